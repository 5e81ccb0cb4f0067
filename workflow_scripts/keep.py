"""Adapter for rule keep: rank.tsv -> the next round's keep list + contact sheets."""
from pathlib import Path

from ganflow import keep
from ganflow.runlog import logged

with logged(snakemake.log[0]):
    cfg = snakemake.params.rank
    keep.make_keep(snakemake.input[0], snakemake.output.keep, drop_lowest=cfg["drop_lowest"],
                   drop_highest=cfg["drop_highest"], sheets_dir=Path(snakemake.output.lowest).parent,
                   sheet_items=cfg["sheet_items"])
