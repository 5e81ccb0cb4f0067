"""Adapter for rule project: one image into the final generator's W (w, reconstruction, sheet, video)."""
from pathlib import Path

from ganflow import project
from ganflow.runlog import limit_threads, logged

with logged(snakemake.log[0]):
    limit_threads(snakemake.threads)
    p = snakemake.params
    project.make_projection(Path(snakemake.input.export).parent, snakemake.input.target,
                            Path(snakemake.output.w).parent, settings=dict(p.settings), distance_name=p.distance,
                            vgg16=snakemake.input.vgg16 or None, vgg16_sha256=p.vgg16_sha256,
                            encoder_npz=snakemake.input.encoder or None, video=dict(p.video))
