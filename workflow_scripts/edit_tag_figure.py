"""Adapter for rule edit_tag_figure: one tag direction on several seeds, with the tagger's scores."""
from pathlib import Path

from ganflow import convnets, edit, latents, weights
from ganflow.devices import start
from ganflow.runlog import logged

with logged(snakemake.log[0]):
    start(snakemake.threads, require_gpu=snakemake.config["train"].get("require_gpu"))
    G, _, _ = weights.load_export(Path(snakemake.input.export).parent)
    edit.tag_figure(G, convnets.load_tagger(snakemake.input.tagger), latents.load_directions(snakemake.input.directions),
                    f"tag-{snakemake.wildcards.tag}", snakemake.output.png, snakemake.output.tsv,
                    seeds=snakemake.params.seeds, strengths=snakemake.params.strengths,
                    psi=snakemake.params.psi)
