"""Adapter for rule faces_cascade: download lbpcascade_animeface once, sha256-checked."""
from pathlib import Path

from ganflow import faces
from ganflow.runlog import logged

with logged(snakemake.log[0]):
    faces.fetch_cascade(Path(snakemake.output[0]), sha256=snakemake.params.sha256)
