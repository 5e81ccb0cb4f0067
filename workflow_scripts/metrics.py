"""Adapter for rule metrics: FID and KID of a round's generator against its dataset."""
from pathlib import Path

from ganflow import metrics
from ganflow.devices import start
from ganflow.runlog import logged

with logged(snakemake.log[0]):
    start(snakemake.threads, require_gpu=snakemake.config["train"].get("require_gpu"))
    metrics.make_metrics(Path(snakemake.input.export).parent, Path(snakemake.input.dataset).parent,
                         snakemake.output[0], inception=snakemake.input.inception,
                         inception_sha256=snakemake.params.sha256, images=snakemake.params.images,
                         kid_subsets=snakemake.params.kid[0], kid_subset_size=snakemake.params.kid[1])
