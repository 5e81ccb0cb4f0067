"""Adapter for rule edit_ganspace: principal components of the final generator's sampled w."""
from pathlib import Path

from ganflow import edit, weights
from ganflow.runlog import limit_threads, logged

with logged(snakemake.log[0]):
    limit_threads(snakemake.threads)
    G, _, _ = weights.load_export(Path(snakemake.input.export).parent)
    edit.make_directions(G, "ganspace", snakemake.output[0], k=snakemake.params.k, samples=snakemake.params.samples)
