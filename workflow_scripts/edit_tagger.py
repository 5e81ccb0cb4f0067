"""Adapter for rule edit_tagger: a multi-label tagger trained on the final images and their tags."""
from ganflow import tagger
from ganflow.devices import start
from ganflow.runlog import logged

with logged(snakemake.log[0]):
    start(snakemake.threads, require_gpu=snakemake.config["train"].get("require_gpu"))
    p = snakemake.params
    tagger.make_tagger(snakemake.input.images, snakemake.input.ids, snakemake.output.npz, snakemake.output.tsv,
                       resolution=p.resolution, tags=p.tags, min_count=p.min_count,
                       settings=tagger.TaggerSettings(**p.tagger))
