"""Adapter for rule edit_ganspace: principal components of the final generator's sampled w."""
from pathlib import Path

from ganflow import edit, weights
from ganflow.devices import start
from ganflow.runlog import logged

with logged(snakemake.log[0]):
    start(snakemake.threads, require_gpu=snakemake.config["train"].get("require_gpu"))
    G, _, _ = weights.load_export(Path(snakemake.input.export).parent)
    edit.make_directions(G, "ganspace", snakemake.output[0], k=snakemake.params.k, samples=snakemake.params.samples)
