"""Face detection on large originals: ganflow's faces stage against the usual recipe of one
Python process per image, and whether both find the same faces.

    .venv/bin/python benchmarks/bench_faces.py [--images 200] [--recipe 60] [--seed 0]

Builds --images JPEGs once from shared/'s tadne grid (a random block of 1-3 x 1-3 of its
tiles, scaled to a longest side of 1600-4000 px: 1.3-16 Mpx) and runs, two at a time as on
two cores:

  recipe   one fresh interpreter per image (`ls | xargs -P2 -n1 crop.py`): cv2.imread,
           grey, equalizeHist, detectMultiScale(gray, 1.1, 5, minSize=(50, 50)) at full
           size, crop, save; on the first --recipe images (the set is i.i.d.)
  ganflow  faces.make_faces in two shard jobs with the default FaceParams (detect_side
           1024, max_crop_side 1024): one interpreter and cascade per shard, large pictures
           searched shrunk, crops longer than 1024 px stored shrunk; --detect-side and
           --max-crop-side (0: full size) try other values

Prints images/s of each and their ratio, then the agreement of ganflow's boxes with the
recipe's full-size ones on the images both ran (a match: IoU >= 0.5).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.bench_dedupe import cpu_seconds  # noqa: E402
from ganflow import faces  # noqa: E402
from ganflow.ids import ID_COLUMNS  # noqa: E402
from ganflow.tables import read_tsv, write_tsv  # noqa: E402

SHARED = Path(os.environ.get("GANFLOW_SHARED", REPO.parent / "shared")) / "resources"
CASCADE = SHARED / "lbpcascade_animeface.xml"
GRID = SHARED / "testdata/tadne-grid-6x6.jpg"
JOBS = 2

# The recipe, as people run it; it also writes its boxes (one "x y w h" line each) for the agreement.
RECIPE = """
import sys, cv2
src, out = sys.argv[1], sys.argv[2]
cascade = cv2.CascadeClassifier(sys.argv[3])
img = cv2.imread(src)
boxes = []
if img is not None:
    gray = cv2.equalizeHist(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY))
    for k, (x, y, w, h) in enumerate(cascade.detectMultiScale(gray, 1.1, 5, minSize=(50, 50))):
        cv2.imwrite(f"{out}-{k}.png", img[y:y + h, x:x + w])
        boxes.append(f"{x} {y} {w} {h}")
open(f"{out}.boxes", "w").write("".join(b + "\\n" for b in boxes))
"""


def run_recipe(sources: list[Path], out: Path, jobs: int = JOBS) -> None:
    """The recipe over `sources`, `jobs` processes at a time; crops and boxes go to out/<k>*."""
    script = out / "crop_one.py"
    script.write_text(RECIPE)
    procs: list[subprocess.Popen] = []
    for k, src in enumerate(sources):
        procs.append(subprocess.Popen([sys.executable, str(script), str(src), str(out / str(k)), str(CASCADE)]))
        if len(procs) >= jobs:
            procs.pop(0).wait()
    for p in procs:
        p.wait()


def make_originals(out: Path, n: int, seed: int) -> tuple[list[Path], list[float]]:
    """n JPEGs, random blocks of the grid's tiles (1-3 a side, like an illustration of one to
    a few characters) scaled to a longest side of 1600-4000 px, and their sizes in Mpx."""
    rng = np.random.default_rng(seed)
    grid = cv2.imread(str(GRID))
    tile = grid.shape[0] // 6
    paths, mpx = [], []
    for k in range(n):
        cols = int(rng.integers(1, 4))
        rows = int(np.clip(cols + rng.integers(-1, 2), 1, 3))
        c0, r0 = int(rng.integers(0, 7 - cols)), int(rng.integers(0, 7 - rows))
        block = grid[r0 * tile:(r0 + rows) * tile, c0 * tile:(c0 + cols) * tile]
        scale = float(rng.uniform(1600, 4000)) / max(block.shape[:2])
        size = (round(block.shape[1] * scale), round(block.shape[0] * scale))
        path = out / f"{k}.jpg"
        img = cv2.resize(block, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)
        cv2.imwrite(str(path), img, [cv2.IMWRITE_JPEG_QUALITY, 90])
        paths.append(path)
        mpx.append(size[0] * size[1] / 1e6)
    return paths, mpx


def _shard(ids: str, out: str, detect_side: int | None, max_crop_side: int | None) -> None:
    faces.make_faces(Path(ids), Path(out), Path(out + ".tsv"),
                     faces.FaceParams(detect_side=detect_side, max_crop_side=max_crop_side), cascade_path=CASCADE)


def run_ganflow(sources: list[Path], root: Path, detect_side: int | None, max_crop_side: int | None) -> list[dict]:
    """make_faces in JOBS shard jobs, as Snakemake runs them; the manifests' rows."""
    jobs = []
    for s in range(JOBS):
        ids = root / f"ids-{s}.tsv"
        write_tsv(ids, [{"id": k, "path": str(p)} for k, p in enumerate(sources) if k % JOBS == s], ID_COLUMNS)
        jobs.append((str(ids), str(root / f"faces-{detect_side}-{max_crop_side}-{s}"), detect_side, max_crop_side))
    with ProcessPoolExecutor(JOBS) as pool:
        list(pool.map(_shard, *zip(*jobs)))
    return [r for _, out, _, _ in jobs for r in read_tsv(out + ".tsv")]


def iou(a, b) -> float:
    x0, y0 = max(a[0], b[0]), max(a[1], b[1])
    x1, y1 = min(a[0] + a[2], b[0] + b[2]), min(a[1] + a[3], b[1] + b[3])
    inter = max(x1 - x0, 0) * max(y1 - y0, 0)
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


def agreement(reference: dict[int, list], ours: dict[int, list]) -> dict:
    """Greedy one-to-one matching per image at IoU >= 0.5: matched, missed (reference only),
    extra (ours only), images whose face count differs, and the matches' median IoU."""
    matched, missed, extra, counts, ious = 0, 0, 0, 0, []
    for k, ref in reference.items():
        left = list(ours.get(k, []))
        for box in ref:
            best = max(left, key=lambda b: iou(box, b), default=None)
            if best is not None and iou(box, best) >= 0.5:
                ious.append(iou(box, best))
                left.remove(best)
                matched += 1
            else:
                missed += 1
        extra += len(left)
        counts += len(ref) != len(ours.get(k, []))
    return {"faces": matched + missed, "matched": matched, "missed": missed, "extra": extra,
            "images with another count": counts, "median IoU": round(float(np.median(ious)), 3) if ious else None}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=200)
    ap.add_argument("--recipe", type=int, default=60, help="images the (slow) recipe runs on")
    ap.add_argument("--detect-side", type=int, nargs="+", default=[faces.FaceParams.detect_side],
                    help="faces.detect_side values to run ganflow with (0: full size)")
    ap.add_argument("--max-crop-side", type=int, nargs="+", default=[faces.FaceParams.max_crop_side],
                    help="faces.max_crop_side values to run ganflow with (0: full size)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "src").mkdir()
        (root / "recipe").mkdir()
        t0 = time.perf_counter()
        sources, mpx = make_originals(root / "src", args.images, args.seed)
        print(f"{len(sources)} originals, {min(mpx):.1f}-{max(mpx):.1f} Mpx (mean {np.mean(mpx):.1f}), "
              f"built in {time.perf_counter() - t0:.0f} s; {JOBS} jobs at a time on {os.cpu_count()} cpus", flush=True)

        subset = sources[: args.recipe]
        t0, c0 = time.perf_counter(), cpu_seconds()
        run_recipe(subset, root / "recipe")
        t_recipe, c_recipe = time.perf_counter() - t0, (cpu_seconds() - c0) / len(subset)
        recipe_rate = len(subset) / t_recipe
        print(f"recipe (1 process/image, full size)   {len(subset):>4} images {t_recipe:7.1f} s "
              f"{recipe_rate:6.2f} images/s, {c_recipe:5.2f} CPU s/image", flush=True)
        reference = {k: [tuple(map(int, line.split())) for line in (root / f"recipe/{k}.boxes").read_text()
                         .splitlines()] for k in range(len(subset))}
        for side, crop_side in [(d, m) for d in args.detect_side for m in args.max_crop_side]:
            t0, c0 = time.perf_counter(), cpu_seconds()
            rows = run_ganflow(sources, root, side or None, crop_side or None)
            t_ours, c_ours = time.perf_counter() - t0, (cpu_seconds() - c0) / len(sources)
            ours: dict[int, list] = {}
            for r in rows:
                if r["face_box"] and int(r["id"]) < len(subset):
                    ours.setdefault(int(r["id"]), []).append(tuple(map(int, r["face_box"].split(","))))
            print(f"ganflow faces, detect_side {side or 'full':>5}, max_crop_side {crop_side or 'full':>5}  "
                  f"{len(sources):>4} images {t_ours:7.1f} s "
                  f"{len(sources) / t_ours:6.2f} images/s, {c_ours:5.2f} CPU s/image: "
                  f"{len(sources) / t_ours / recipe_rate:.1f}x the recipe's rate, {c_recipe / c_ours:.1f}x less CPU; "
                  f"faces vs the recipe's: {agreement(reference, ours)}", flush=True)


if __name__ == "__main__":
    main()
