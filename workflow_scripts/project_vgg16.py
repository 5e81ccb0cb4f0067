"""Adapter for rule project_vgg16: download Keras's VGG16 ImageNet weights once, checked."""
from ganflow import inversion
from ganflow.runlog import logged

with logged(snakemake.log[0]):
    inversion.fetch_vgg16(snakemake.output[0], sha256=snakemake.params.sha256)
