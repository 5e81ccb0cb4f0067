"""Adapter for rule clean: one shard's crops -> verdicts."""
from pathlib import Path

from ganflow import clean
from ganflow.runlog import logged

with logged(snakemake.log[0]):
    clean.make_clean(Path(snakemake.input.faces), Path(snakemake.output[0]), clean.CleanParams(**snakemake.params.clean))
