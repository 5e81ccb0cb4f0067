"""Adapter for rule edit_sefa: SeFa directions from the final generator's modulation weights."""
from pathlib import Path

from ganflow import edit, weights
from ganflow.runlog import limit_threads, logged

with logged(snakemake.log[0]):
    limit_threads(snakemake.threads)
    G, _, _ = weights.load_export(Path(snakemake.input.export).parent)
    edit.make_directions(G, "sefa", snakemake.output[0], k=snakemake.params.k, layers=snakemake.params.layers,
                         samples=snakemake.params.samples)
