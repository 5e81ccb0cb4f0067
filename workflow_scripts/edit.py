"""Adapter for rule edit: one named direction at one strength, applied to a seed or a projection."""
from pathlib import Path

from ganflow import edit, weights
from ganflow.runlog import limit_threads, logged

with logged(snakemake.log[0]):
    limit_threads(snakemake.threads)
    w = snakemake.wildcards
    G, _, _ = weights.load_export(Path(snakemake.input.export).parent)
    edit.apply_edit(G, edit.load_directions(snakemake.input.directions), w.direction, [float(w.strength)],
                    snakemake.output[0], seeds=w.source[len("seed"):] if not snakemake.input.w else None,
                    projection=snakemake.input.w or None, psi=snakemake.params.psi)
