"""Adapter for rule metrics: FID, KID, precision and recall of a round's generator."""
from pathlib import Path

from ganflow import metrics
from ganflow.devices import start
from ganflow.runlog import logged

with logged(snakemake.log[0]):
    start(snakemake.threads, require_gpu=snakemake.config["train"].get("require_gpu"))
    metrics.make_metrics(Path(snakemake.input.export).parent, Path(snakemake.input.dataset).parent,
                         snakemake.output[0], inception=snakemake.input.inception or None,
                         inception_sha256=snakemake.params.sha256[0], vgg16=snakemake.input.vgg16 or None,
                         vgg16_sha256=snakemake.params.sha256[1], **snakemake.params.settings)
