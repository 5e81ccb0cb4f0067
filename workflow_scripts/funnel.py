"""Adapter for rule funnel: stage manifests -> funnel table + contact sheets."""
from pathlib import Path

from ganflow import funnel
from ganflow.runlog import logged

with logged(snakemake.log[0]):
    inp, cfg = snakemake.input, snakemake.params.report
    sheets = {Path(p).stem.removeprefix("contact-"): Path(p) for p in snakemake.output.sheets}
    funnel.make_funnel(Path(inp.summary), inp.faces, inp.clean, Path(inp.dedupe), inp.images, inp.image_rejects,
                       Path(snakemake.output.table), sheets, thumb=cfg["contact_thumb"], max_items=cfg["contact_max"])
