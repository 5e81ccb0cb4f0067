"""Adapter for rule samples: PNG per seed + a grid from the final generator."""
from pathlib import Path

from ganflow import samples, weights
from ganflow.devices import start
from ganflow.runlog import logged

with logged(snakemake.log[0]):
    start(snakemake.threads, require_gpu=snakemake.config["train"].get("require_gpu"))
    cfg = dict(snakemake.params.samples)
    G, _, _ = weights.load_export(Path(snakemake.input.export).parent)
    samples.make_samples(G, cfg.pop("seeds"), snakemake.params.psi, snakemake.output.seeds, snakemake.output.grid,
                         settings_json=snakemake.output.settings, **cfg)
