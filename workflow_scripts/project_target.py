"""Adapter for rule project_target: final image k of n, the target of projection dataset-k."""
from ganflow import project
from ganflow.runlog import logged

with logged(snakemake.log[0]):
    project.pick_dataset_image(snakemake.input, int(snakemake.wildcards.k), snakemake.params.images,
                               snakemake.output[0])
