"""Per-stage throughput of the data stages on a generated dataset, and face-crop
throughput against the usual recipe of one Python process per image.

    .venv/bin/python benchmarks/bench_data_stages.py [--faces 2000] [--baseline 40]

Prints images/s per stage. The baseline runs a fresh interpreter per image (what
`ls | xargs -P2 -n1 crop.py` does): it pays Python + OpenCV start-up and the cascade
load every time; ganflow loads them once per shard job. bench_faces.py runs the same
recipe on large originals, where detect_side matters.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.bench_faces import CASCADE, run_recipe  # noqa: E402
from ganflow import clean, dedupe, demo, faces, ids, images  # noqa: E402
from ganflow.tables import read_tsv  # noqa: E402

SHARDS = 2


def timed(label: str, n: int, fn, *args, **kwargs):
    t0 = time.perf_counter()
    result = fn(*args, **kwargs)
    dt = time.perf_counter() - t0
    print(f"{label:<28} {n:>6} items  {dt:8.2f} s  {n / dt:9.1f} items/s", flush=True)
    return result


def _shard_job(stage: str, shard: str, root: str) -> None:
    """One shard job of a stage, as Snakemake would run it (one process per shard)."""
    r = Path(root)
    if stage == "faces":
        faces.make_faces(r / f"ids/{shard}.tsv", r / f"faces/{shard}", r / f"faces/{shard}.tsv",
                         faces.FaceParams(), cascade_path=CASCADE)
    elif stage == "clean":
        clean.make_clean(r / f"faces/{shard}.tsv", r / f"clean/{shard}.tsv", clean.CleanParams(min_side=48))
    else:
        images.make_images(r / f"clean/{shard}.tsv", r / f"dedupe/{shard}.tsv", r / f"images/{shard}",
                           r / f"images/{shard}.tsv", resolution=64,
                           upscaler=images.Upscaler("auto", threads=1))


def per_shard(stage: str, root: Path) -> None:
    with ProcessPoolExecutor(SHARDS) as pool:
        list(pool.map(_shard_job, [stage] * SHARDS, [f"{i:04d}" for i in range(SHARDS)], [str(root)] * SHARDS))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--faces", type=int, default=2000, help="face images to generate (junk is added)")
    ap.add_argument("--baseline", type=int, default=40, help="images for the one-process-per-image baseline")
    args = ap.parse_args()
    print(f"cpus: {os.cpu_count()}, shards (parallel jobs): {SHARDS}")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        counts = timed("generate demo mirror", args.faces, demo.make_mirror, root / "mirror", n_faces=args.faces)
        metadata = sorted((root / "mirror/metadata").glob("*.json"))
        sel = timed("select (metadata)", sum(counts.values()), ids.select_danbooru, root / "mirror", metadata,
                    ids.TagFilter())
        ids.write_selection(sel, root / "ids", SHARDS)
        n_sel = len(sel.rows)
        timed("faces (detect + crop)", n_sel, per_shard, "faces", root)
        n_crops = sum(r["status"] == "face" for s in range(SHARDS) for r in read_tsv(root / f"faces/{s:04d}.tsv"))
        timed("clean (verdict + hashes)", n_crops, per_shard, "clean", root)
        clean_tsvs = [root / f"clean/{s:04d}.tsv" for s in range(SHARDS)]
        n_kept = sum(r["verdict"] == "kept" for p in clean_tsvs for r in read_tsv(p))
        timed("dedupe (global)", n_kept, dedupe.dedupe, clean_tsvs, root / "dedupe.tsv", root / "dedupe", 4)
        n_unique = sum(r["keep"] == "1" for r in read_tsv(root / "dedupe.tsv"))
        timed("images (upscale + 64px)", n_unique, per_shard, "images", root)

        sample = [Path(r["path"]) for r in sel.rows[: args.baseline]]
        (root / "baseline").mkdir()
        timed("baseline: 1 process/image", len(sample), run_recipe, sample, root / "baseline", SHARDS)


if __name__ == "__main__":
    main()
