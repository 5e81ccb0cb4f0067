"""Adapter for rule demo: generate the embedded Danbooru-style demo mirror."""
from pathlib import Path

from ganflow import demo
from ganflow.runlog import logged

with logged(snakemake.log[0]):
    demo.make_mirror(Path(snakemake.output.truth).parent, **snakemake.params.demo)
