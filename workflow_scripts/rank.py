"""Adapter for rule rank: a round's discriminator scores every image of that round."""
from pathlib import Path

from ganflow import rank
from ganflow.runlog import limit_threads, logged

with logged(snakemake.log[0]):
    limit_threads(snakemake.threads)
    rank.rank_dataset(Path(snakemake.input.export).parent, Path(snakemake.input.dataset).parent,
                      snakemake.input.manifests, snakemake.output[0], batch_size=snakemake.params.batch_size)
