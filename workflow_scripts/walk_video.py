"""Adapter for rule walk_video: the final generator -> one latent-walk video."""
from pathlib import Path

from ganflow import training, videos
from ganflow.runlog import logged

with logged(snakemake.log[0]):
    cfg, name = snakemake.params.videos, snakemake.wildcards.video
    G, _, _ = training.load_export(Path(snakemake.input.generator).parent)
    if name == "interpolation-grid":
        videos.interpolation_video(G, snakemake.output[0], batch=cfg["batch"], **cfg["interpolation"])
    else:
        videos.style_mixing_video(G, snakemake.output[0], kind=name.rsplit("-", 1)[1], batch=cfg["batch"],
                                  **cfg["style_mixing"])
