"""Adapter for rule dedupe: all clean manifests -> global duplicate clusters."""
from pathlib import Path

from ganflow import dedupe
from ganflow.runlog import logged

with logged(snakemake.log[0]):
    dedupe.dedupe(snakemake.input, snakemake.output.clusters, Path(snakemake.output.shards[0]).parent,
                  threshold=snakemake.params.threshold)
