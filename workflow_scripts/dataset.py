"""Adapter for rule dataset: images manifests (+ keep list) -> TFRecord shards, verified."""
from pathlib import Path

from ganflow import dataset, records
from ganflow.runlog import SetupError, logged

with logged(snakemake.log[0]) as log:
    cfg = snakemake.params.settings
    out_dir = Path(snakemake.output.meta).parent
    meta = dataset.pack(snakemake.input.manifests, out_dir,
                        keep=snakemake.input.keep[0] if snakemake.input.keep else None,
                        shards=cfg["shards"], seed=cfg["seed"], resolution=snakemake.params.resolution,
                        verbose=cfg["verbose"])
    check = records.verify(out_dir)
    if not check["ok"]:
        raise SetupError(f"the packed dataset failed verification: {check['problems'][0]}")
    log.info("packed %d images into %d shards", meta["count"], len(meta["shards"]))
