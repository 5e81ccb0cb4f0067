"""Adapter for rule project: one image into the final generator's W (w, reconstruction, sheet, video)."""
from pathlib import Path

from ganflow import project
from ganflow.devices import start
from ganflow.runlog import logged

with logged(snakemake.log[0]):
    start(snakemake.threads, require_gpu=snakemake.config["train"].get("require_gpu"))
    p = snakemake.params
    project.make_projection(Path(snakemake.input.export).parent, snakemake.input.target,
                            Path(snakemake.output.w).parent, settings=dict(p.settings), distance_name=p.distance,
                            vgg16=snakemake.input.vgg16 or None, vgg16_sha256=p.vgg16_sha256,
                            encoder_npz=snakemake.input.encoder or None, video=dict(p.video))
