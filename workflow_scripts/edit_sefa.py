"""Adapter for rule edit_sefa: SeFa directions from the final generator's modulation weights."""
from pathlib import Path

from ganflow import edit, weights
from ganflow.devices import start
from ganflow.runlog import logged

with logged(snakemake.log[0]):
    start(snakemake.threads, require_gpu=snakemake.config["train"].get("require_gpu"))
    G, _, _ = weights.load_export(Path(snakemake.input.export).parent)
    edit.make_directions(G, "sefa", snakemake.output[0], k=snakemake.params.k, layers=snakemake.params.layers,
                         samples=snakemake.params.samples)
