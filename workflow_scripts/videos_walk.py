"""Adapter for rule videos_walk: the final generator -> one latent-walk video."""
from pathlib import Path

from ganflow import videos, weights
from ganflow.devices import start
from ganflow.runlog import logged

with logged(snakemake.log[0]):
    start(snakemake.threads, require_gpu=snakemake.config["train"].get("require_gpu"))
    cfg, name, psi = snakemake.params.walks, snakemake.wildcards.video, snakemake.params.psi
    G, _, _ = weights.load_export(Path(snakemake.input.export).parent)
    if name == "interpolation-grid":
        videos.interpolation_video(G, snakemake.output[0], psi=psi, batch=cfg["batch"], **cfg["interpolation"])
    else:
        videos.style_mixing_video(G, snakemake.output[0], kind=name.rsplit("-", 1)[1], psi=psi,
                                  batch=cfg["batch"], **cfg["style_mixing"])
