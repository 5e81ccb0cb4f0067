"""Adapter for rule samples: PNG per seed + a grid from the final generator."""
from pathlib import Path

from ganflow import samples, training
from ganflow.runlog import logged

with logged(snakemake.log[0]):
    cfg = dict(snakemake.params.samples)
    G, _, _ = training.load_export(Path(snakemake.input.generator).parent)
    samples.make_samples(G, cfg.pop("seeds"), cfg.pop("psi"), snakemake.output.seeds, snakemake.output.grid, **cfg)
