"""Adapter for rule project_encoder: an encoder trained on the final generator's own samples."""
from pathlib import Path

from ganflow import encoder
from ganflow.runlog import limit_threads, logged

with logged(snakemake.log[0]):
    limit_threads(snakemake.threads)
    settings = {k: v for k, v in snakemake.params.encoder.items() if k != "enabled"}
    encoder.make_encoder(Path(snakemake.input.export).parent, snakemake.output[0], settings)
