"""Adapter for rule images: one shard's kept, unique crops -> final NxN images."""
from pathlib import Path

from ganflow import images
from ganflow.runlog import logged
from ganflow.tables import write_tsv

with logged(snakemake.log[0]):
    cfg = snakemake.params.images
    upscaler = images.Upscaler(cfg["upscaler"], noise=cfg["noise"], threads=snakemake.threads,
                               gpu=cfg["gpu"], model=cfg["model"])
    summary = images.make_images(Path(snakemake.input.clean), Path(snakemake.input.dedupe),
                                 Path(snakemake.output.images), Path(snakemake.output.manifest),
                                 resolution=cfg["resolution"], fmt=cfg["format"], quality=cfg["quality"],
                                 upscaler=upscaler)
    write_tsv(snakemake.output.rejected, summary["rejected"], images.REJECT_COLUMNS)
