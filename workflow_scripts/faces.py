"""Adapter for rule faces: one shard's ids -> face crops + manifest."""
from pathlib import Path

from ganflow import faces
from ganflow.runlog import logged

with logged(snakemake.log[0]):
    cfg = dict(snakemake.params.faces)
    sha256 = cfg.pop("cascade_sha256")
    del cfg["cascade"]  # the resolved path is the rule's input
    cascade = Path(snakemake.input.cascade) if snakemake.input.cascade else None
    faces.make_faces(Path(snakemake.input.ids), Path(snakemake.output.crops), Path(snakemake.output.manifest),
                     faces.FaceParams(**cfg), cascade_path=cascade, cascade_sha256=sha256)
