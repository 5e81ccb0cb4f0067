"""How long Snakemake takes to decide that nothing is stale, on a large folder dataset.

    .venv/bin/python benchmarks/bench_noop.py [--images 100000] [--shards 100] [--keep DIR] [--upto faces]

Builds a folder of small unique PNGs (under --keep it is built once and reused, as are
the results), runs the data stages once (faces disabled, so the run stays minutes long),
then times, with the peak memory of the Snakemake process: a dry run and a real run with
nothing to do, a real run after touching every source file (each file is rehashed once:
sources rerun by content, so a touch must rerun nothing), a dry run after touching them
all again, and one more dry run; then edits one source and checks that exactly its
shard's faces job is planned. `--upto faces` builds and checks only the ids and faces
stages (the ones that see every image; the rest add one job per shard and stage), for
sizes whose first run of every data stage would take hours.
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


TARGETS: list[str] = ["data"]


def snakemake(wd: Path, *args: str) -> tuple[float, float, float, str]:
    """Seconds, CPU seconds and peak memory (GB) of the Snakemake process, and the stdout
    of one run (on a busy machine the CPU seconds are the figure that compares)."""
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--configfile",
           str(wd / "config.yaml"), "--directory", str(wd), "--cores", "2", *TARGETS, *args]
    t0 = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        dt = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if proc.returncode:
            sys.exit(err.read()[-3000:])
        return dt, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 2**20, out.read()


def timed(label: str, wd: Path, *args: str) -> None:
    seconds, cpu, gb, _ = snakemake(wd, *args, "--quiet", "all")
    print(f"{label:36s}{seconds:8.1f} s  (CPU {cpu:5.1f} s)  {gb:5.2f} GB", flush=True)


def planned(wd: Path) -> dict[str, int]:
    """Rule -> job count of what a dry run would do."""
    out = snakemake(wd, "--dry-run", "--quiet", "rules")[3]
    return {p[0]: int(p[1]) for p in map(str.split, out.splitlines())
            if len(p) == 2 and p[1].isdigit() and p[0] not in ("job", "total")}


def touch_all(folder: Path) -> None:
    for p in folder.rglob("*.png"):
        os.utime(p, None)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=100_000)
    ap.add_argument("--shards", type=int, default=100)
    ap.add_argument("--keep", type=Path, help="work here and keep it (default: a temp dir)")
    ap.add_argument("--upto", choices=["data", "faces"], default="data", help="the stages to build and check")
    args = ap.parse_args()
    if args.upto == "faces":
        TARGETS[:] = [f"results/bench/faces/{shard:04d}.tsv" for shard in range(args.shards)]
    with tempfile.TemporaryDirectory() as tmp:
        wd = args.keep or Path(tmp)
        folder = wd / "folder"
        if not folder.is_dir():
            t0 = time.perf_counter()
            make_folder(folder, args.images)
            print(f"made {args.images} source images in {time.perf_counter() - t0:.1f} s", flush=True)
        cfg = {"dataset": "bench", "shards": args.shards, "source": {"kind": "folder", "root": "folder"},
               "faces": {"enabled": False}, "clean": {"min_side": 8},
               "images": {"resolution": 16, "upscaler": "lanczos"}}
        (wd / "config.yaml").write_text(yaml.safe_dump(cfg))
        timed(f"first run (up to {args.upto}):", wd)
        timed("no-op dry run:", wd, "--dry-run")
        timed("no-op run:", wd)
        touch_all(folder)
        timed("run after touching all:", wd)
        touch_all(folder)
        timed("dry run after touching all again:", wd, "--dry-run")
        timed("no-op dry run again:", wd, "--dry-run")
        edited = next(folder.rglob("*.png"))
        image = np.asarray(Image.open(edited)).copy()
        image[0, 0] = 255 - image[0, 0]
        Image.fromarray(image).save(edited)
        print(f"planned after editing one source:   {planned(wd)}", flush=True)


if __name__ == "__main__":
    main()
