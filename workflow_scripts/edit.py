"""Adapter for rule edit: one named direction at one strength, applied to a seed or a projection."""
from pathlib import Path

from ganflow import edit, latents, weights
from ganflow.devices import start
from ganflow.runlog import logged

with logged(snakemake.log[0]):
    start(snakemake.threads, require_gpu=snakemake.config["train"].get("require_gpu"))
    w = snakemake.wildcards
    G, _, _ = weights.load_export(Path(snakemake.input.export).parent)
    edit.apply_edit(G, latents.load_directions(snakemake.input.directions), w.direction, [float(w.strength)],
                    snakemake.output[0], seeds=w.source[len("seed"):] if not snakemake.input.w else None,
                    projection=snakemake.input.w or None, psi=snakemake.params.psi)
