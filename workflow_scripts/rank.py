"""Adapter for rule rank: a round's discriminator scores every image of that round."""
from pathlib import Path

from ganflow import rank
from ganflow.devices import start
from ganflow.runlog import logged

with logged(snakemake.log[0]):
    start(snakemake.threads, require_gpu=snakemake.config["train"].get("require_gpu"))
    rank.rank_dataset(Path(snakemake.input.export).parent, Path(snakemake.input.dataset).parent,
                      snakemake.input.manifests, snakemake.output[0], batch_size=snakemake.params.batch_size)
