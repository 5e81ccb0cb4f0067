"""Adapter for rule project_encoder: an encoder trained on the final generator's own samples."""
from pathlib import Path

from ganflow import encoder
from ganflow.devices import start
from ganflow.runlog import logged

with logged(snakemake.log[0]):
    start(snakemake.threads, require_gpu=snakemake.config["train"].get("require_gpu"))
    settings = {k: v for k, v in snakemake.params.encoder.items() if k != "enabled"}
    encoder.make_encoder(Path(snakemake.input.export).parent, snakemake.output[0], settings)
