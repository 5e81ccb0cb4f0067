"""Adapter for rule edit_video: each direction of one method in turn, applied to a row of seeds."""
from pathlib import Path

from ganflow import edit, latents, weights
from ganflow.devices import start
from ganflow.runlog import logged

with logged(snakemake.log[0]):
    start(snakemake.threads, require_gpu=snakemake.config["train"].get("require_gpu"))
    G, _, _ = weights.load_export(Path(snakemake.input.export).parent)
    edit.direction_video(G, latents.load_directions(snakemake.input.directions), snakemake.output[0],
                         seeds=snakemake.params.seeds, psi=snakemake.params.psi,
                         **snakemake.params.video)
