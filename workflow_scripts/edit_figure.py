"""Adapter for rule edit_figure: one method's directions (rows) at each strength (columns)."""
from pathlib import Path

from ganflow import edit, latents, weights
from ganflow.devices import start
from ganflow.runlog import logged

with logged(snakemake.log[0]):
    start(snakemake.threads, require_gpu=snakemake.config["train"].get("require_gpu"))
    G, _, _ = weights.load_export(Path(snakemake.input.export).parent)
    edit.direction_figure(G, latents.load_directions(snakemake.input.directions), snakemake.output[0],
                          seed=snakemake.params.seed, strengths=snakemake.params.strengths, psi=snakemake.params.psi)
