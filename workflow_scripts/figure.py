"""Adapter for rule figure: one of the paper's five figures from the final generator."""
from pathlib import Path

from ganflow import figures, training
from ganflow.runlog import logged

with logged(snakemake.log[0]):
    cfg = dict(snakemake.params.figures)
    psi = cfg.pop("psi")
    G, _, _ = training.load_export(Path(snakemake.input.generator).parent)
    figures.make_figures(G, Path(snakemake.output[0]).parent, psi=psi, settings=cfg,
                         names=[snakemake.wildcards.figure])
