"""Adapter for rule edit_video: each direction of one method in turn, applied to a row of seeds."""
from pathlib import Path

from ganflow import edit, weights
from ganflow.runlog import limit_threads, logged

with logged(snakemake.log[0]):
    limit_threads(snakemake.threads)
    G, _, _ = weights.load_export(Path(snakemake.input.export).parent)
    edit.direction_video(G, edit.load_directions(snakemake.input.directions), snakemake.output[0],
                         seeds=snakemake.params.seeds, psi=snakemake.params.psi,
                         **snakemake.params.video)
