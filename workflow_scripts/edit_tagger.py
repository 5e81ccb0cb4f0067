"""Adapter for rule edit_tagger: a multi-label tagger trained on the final images and their tags."""
from ganflow import tagger
from ganflow.runlog import limit_threads, logged

with logged(snakemake.log[0]):
    limit_threads(snakemake.threads)
    p = snakemake.params
    tagger.make_tagger(snakemake.input.images, snakemake.input.ids, snakemake.output.npz, snakemake.output.tsv,
                       resolution=p.resolution, tags=p.tags, min_count=p.min_count,
                       settings=tagger.TaggerSettings(**p.tagger))
