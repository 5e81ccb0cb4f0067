"""Adapter for rule figures: one of the paper's five figures from the final generator."""
from pathlib import Path

from ganflow import figures, weights
from ganflow.devices import start
from ganflow.runlog import logged

with logged(snakemake.log[0]):
    start(snakemake.threads, require_gpu=snakemake.config["train"].get("require_gpu"))
    cfg = snakemake.params.figures
    G, _, _ = weights.load_export(Path(snakemake.input.export).parent)
    figures.make_figures(G, Path(snakemake.output[0]).parent, psi=snakemake.params.psi, settings=cfg,
                         names=[snakemake.wildcards.figure])
