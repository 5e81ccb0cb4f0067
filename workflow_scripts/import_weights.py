"""Adapter for rule import_weights: a released StyleGAN2 file -> a ganflow export."""
from pathlib import Path

from ganflow import import_weights
from ganflow.runlog import logged

with logged(snakemake.log[0]):
    import_weights.import_weights(snakemake.input[0], Path(snakemake.output.export).parent)
