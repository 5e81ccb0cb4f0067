"""Adapter for rule faces: one shard's ids -> face crops + manifest."""
from pathlib import Path

from ganflow import faces
from ganflow.runlog import logged

with logged(snakemake.log[0]):
    cfg = dict(snakemake.params.faces)
    cascade, sha256 = cfg.pop("cascade"), cfg.pop("cascade_sha256")
    faces.make_faces(Path(snakemake.input.ids), Path(snakemake.output.crops), Path(snakemake.output.manifest),
                     faces.FaceParams(**cfg), cascade_path=Path(cascade), cascade_sha256=sha256)
