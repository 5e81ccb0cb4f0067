"""Adapter for rule ids: metadata or a plain folder -> ids/{shard}.tsv and the shards' listings."""
from pathlib import Path

from ganflow import ids
from ganflow.runlog import logged

with logged(snakemake.log[0]):
    source = snakemake.params.source
    tag_filter = ids.TagFilter.from_config(snakemake.params.filters)
    if source["kind"] == "danbooru":
        selection = ids.select_danbooru(Path(source["root"]), map(Path, snakemake.input), tag_filter)
    else:
        selection = ids.select_folder(Path(source["root"]), tag_filter)
    ids.write_selection(selection, Path(snakemake.output.summary).parent, snakemake.params.shards)
    ids.write_listings(selection, Path(snakemake.params.listings), snakemake.params.shards)
