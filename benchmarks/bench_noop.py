"""How long Snakemake takes to decide that nothing is stale, on a large folder dataset.

    .venv/bin/python benchmarks/bench_noop.py [--images 100000] [--shards 100] [--keep DIR]

Builds a folder of small unique PNGs, runs the data stages once (faces disabled, so the
run stays minutes long), then times: a dry run with nothing to do, a real run with
nothing to do, and the same after touching every source file (Snakemake then compares
recorded checksums instead of rerunning).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

REPO = Path(__file__).resolve().parents[1]


def make_folder(root: Path, n: int) -> None:
    rng = np.random.default_rng(0)
    for i in range(n):
        d = root / f"{i % 100:02d}"
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(d / f"{i}.png")


def snakemake(wd: Path, *args: str) -> float:
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--configfile",
           str(wd / "config.yaml"), "--directory", str(wd), "--cores", "2", "data", *args, "--quiet", "all"]
    t0 = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True)
    dt = time.perf_counter() - t0
    if out.returncode:
        sys.exit(out.stderr[-3000:])
    return dt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=100_000)
    ap.add_argument("--shards", type=int, default=100)
    ap.add_argument("--keep", type=Path, help="work here and keep it (default: a temp dir)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        wd = args.keep or Path(tmp)
        wd.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        make_folder(wd / "folder", args.images)
        print(f"made {args.images} source images in {time.perf_counter() - t0:.1f} s", flush=True)
        cfg = {"dataset": "bench", "shards": args.shards, "source": {"kind": "folder", "root": "folder"},
               "faces": {"enabled": False}, "clean": {"min_side": 8},
               "images": {"resolution": 16, "upscaler": "lanczos"}}
        (wd / "config.yaml").write_text(yaml.safe_dump(cfg))
        print(f"first run (data stages):        {snakemake(wd):8.1f} s", flush=True)
        print(f"no-op dry run:                  {snakemake(wd, '--dry-run'):8.1f} s", flush=True)
        print(f"no-op run:                      {snakemake(wd):8.1f} s", flush=True)
        for p in (wd / "folder").rglob("*.png"):
            os.utime(p, None)
        print(f"dry run after touching all:     {snakemake(wd, '--dry-run'):8.1f} s", flush=True)
        print(f"run after touching all:         {snakemake(wd):8.1f} s", flush=True)
        print(f"no-op dry run again:            {snakemake(wd, '--dry-run'):8.1f} s", flush=True)


if __name__ == "__main__":
    main()
