"""Adapter for rule edit_boundaries: a direction per tag (InterFaceGAN) from tagger-labelled samples."""
from pathlib import Path

from ganflow import convnets, edit, weights
from ganflow.devices import start
from ganflow.runlog import logged

with logged(snakemake.log[0]):
    start(snakemake.threads, require_gpu=snakemake.config["train"].get("require_gpu"))
    p, b = snakemake.params, dict(snakemake.params.boundary)
    G, _, _ = weights.load_export(Path(snakemake.input.export).parent)
    edit.make_tag_directions(G, convnets.load_tagger(snakemake.input.tagger), snakemake.output.npz, snakemake.output.tsv,
                             samples=b["samples"], seed=b["seed"], quantile=b["quantile"],
                             conditions=p.conditional, seeds=b["check_seeds"],
                             strength=p.strength, psi=p.psi)
