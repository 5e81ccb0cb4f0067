"""Near-duplicate clustering at Danbooru scale: 700k perceptual hashes in one process.

Random 64-bit hashes stand in for a dataset of distinct images, plus planted groups
(a base hash and copies with 1-3 bits flipped, some with identical pixels) whose members
must all land in one cluster; random hashes are ~1e-14 likely to be within 4 bits of
each other, so every other crop must stay alone. Prints wall time, recall and counts.

    .venv/bin/python -m benchmarks.bench_dedupe [--n 700000] [--groups 20000] [--tight 0]

--tight N adds one pathological group of N distinct hashes all within 3 bits of one
base (a huge bucket in every block combination), to show the quadratic worst case.

    .venv/bin/python -m benchmarks.bench_dedupe --images 1500

--images N runs clean + dedupe end to end on N real-art crops instead (windows of
shared/'s tadne grid, 256-768 px, with planted copies: resized and re-encoded, or cut a
little tighter, plus grayscale and flat near-monochrome pictures), twice: as shipped
(colour verdicts on a pixel sample) and with verdicts on every pixel, and findimagedupes
(Debian's findimagedupes; skipped when not on PATH) on the same files. Prints the wall
time of each, the planted copies each puts with their originals (recall), and the pairs
each reports that are not copies (precision).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import tempfile
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import cv2
import numpy as np

from ganflow import clean
from ganflow.dedupe import block_layout, dedupe, find_clusters
from ganflow.faces import FACE_COLUMNS
from ganflow.tables import read_tsv, write_tsv

GRID = Path(os.environ.get("GANFLOW_SHARED", Path(__file__).resolve().parents[2] / "shared")) / \
    "resources/testdata/tadne-grid-6x6.jpg"
SHARDS = 2

CLEAN_COLUMNS = ["crop", "id", "source", "path", "box", "width", "height", "verdict", "detail", "sha256", "phash"]


def make_data(n: int, groups: int, tight: int, seed: int = 0):
    """Hashes, sha256s, areas, crop ids and the planted groups (lists of crop indices)."""
    rng = np.random.default_rng(seed)
    hashes = rng.integers(0, np.iinfo(np.uint64).max, size=n, dtype=np.uint64, endpoint=True)
    sha = [f"{i:064x}" for i in range(n)]
    planted = []
    pos = 0
    for _ in range(groups):
        size = int(rng.integers(2, 6))
        members = list(range(pos, pos + size))
        base = hashes[pos]
        for j in members[1:]:
            flips = rng.choice(64, size=int(rng.integers(1, 4)), replace=False)
            hashes[j] = base ^ np.uint64(sum(1 << int(b) for b in flips))
        if rng.random() < 0.2:  # an exact re-upload of the base as well
            hashes[members[-1]] = base
            sha[members[-1]] = sha[pos]
        planted.append(members)
        pos += size
    if tight:
        base = hashes[pos]
        for j in range(pos + 1, pos + tight):
            flips = rng.choice(64, size=int(rng.integers(1, 4)), replace=False)
            hashes[j] = base ^ np.uint64(sum(1 << int(b) for b in flips))
        planted.append(list(range(pos, pos + tight)))
        pos += tight
    assert pos <= n, "too many planted crops for --n"
    areas = rng.integers(64, 1024, size=n) ** 2
    crops = [f"{i}-0" for i in range(n)]
    return crops, sha, [f"{int(h):016x}" for h in hashes], areas.tolist(), planted


def make_crops(out: Path, n: int, seed: int = 0) -> tuple[list[Path], list[int], dict[str, list[int]]]:
    """n PNG crops of the grid: distinct windows (a lattice of positions a quarter of a
    window apart, some mirrored), then ~27% planted copies of them (resized to 60-90% and
    saved as JPEG at quality 70-90, or cut 3-6% tighter), 4% grayscale and 3% flat
    near-monochrome pictures. Returns the paths, each one's family (copies share their
    original's) and the indices of each kind."""
    rng = np.random.default_rng(seed)
    grid = cv2.imread(str(GRID))
    n_copies, n_gray, n_flat = int(n * 0.27), int(n * 0.04), int(n * 0.03)
    n_base = n - n_copies - n_gray - n_flat
    lattice = [(side, x, y) for side in (300, 420, 560) for x in range(0, grid.shape[1] - side + 1, side // 4)
               for y in range(0, grid.shape[0] - side + 1, side // 4)]
    windows = [lattice[i] for i in rng.choice(len(lattice), n_base, replace=False)]
    paths: list[Path] = []
    family: list[int] = []
    kinds: dict[str, list[int]] = {"original": [], "copy": [], "grayscale": [], "monochrome": []}
    bases = []

    def add(img: np.ndarray, kind: str, fam: int, ext: str = "png", params: tuple = ()) -> None:
        path = out / f"{len(paths)}.{ext}"
        cv2.imwrite(str(path), img, list(params))
        kinds[kind].append(len(paths))
        family.append(fam)
        paths.append(path)

    for side, x, y in windows:
        img = grid[y:y + side, x:x + side]
        img = cv2.resize(img, (int(rng.integers(256, 769)),) * 2, interpolation=cv2.INTER_AREA)
        bases.append(img[:, ::-1] if rng.random() < 0.3 else img)
        add(bases[-1], "original", len(paths))
    for k in rng.choice(n_base, n_copies, replace=False):
        img = bases[k]
        if rng.random() < 0.6:
            size = round(img.shape[0] * rng.uniform(0.6, 0.9))
            add(cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA), "copy", family[k], "jpg",
                (cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(70, 91))))
        else:
            cut = round(img.shape[0] * rng.uniform(0.03, 0.06))
            add(img[cut:-cut, cut:-cut], "copy", family[k])
    for k in rng.choice(n_base, n_gray, replace=False):
        add(cv2.cvtColor(cv2.cvtColor(bases[k], cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR), "grayscale", len(paths))
    for _ in range(n_flat):
        size = int(rng.integers(256, 769))
        flat = np.full((size, size, 3), rng.integers(0, 256, 3), np.float64) + rng.normal(0, 2, (size, size, 1))
        add(np.clip(flat, 0, 255).astype(np.uint8), "monochrome", len(paths))
    return paths, family, kinds


def _clean_shard(faces_tsv: str, out_tsv: str, every_pixel: bool) -> None:
    if every_pixel:  # the verdict as it was: statistics over all pixels
        clean.VERDICT_PIXELS = 1 << 62
    clean.make_clean(Path(faces_tsv), Path(out_tsv), clean.CleanParams())


def cpu_seconds() -> float:
    """CPU time of this process and its waited-for children: steadier than wall time on a shared machine."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def run_ganflow(paths: list[Path], root: Path, every_pixel: bool,
                threshold: int) -> tuple[float, float, list[int], dict]:
    """clean in SHARDS parallel jobs, then dedupe: (seconds, CPU seconds, each path's group, each crop's verdict)."""
    root.mkdir()
    jobs = []
    for s in range(SHARDS):
        rows = [{"crop": f"{i}-0", "id": i, "source": str(p), "path": str(p), "status": "face"}
                for i, p in enumerate(paths) if i % SHARDS == s]
        write_tsv(root / f"faces-{s}.tsv", rows, FACE_COLUMNS)
        jobs.append((str(root / f"faces-{s}.tsv"), str(root / f"clean-{s}.tsv"), every_pixel))
    t0, c0 = time.perf_counter(), cpu_seconds()
    with ProcessPoolExecutor(SHARDS) as pool:
        list(pool.map(_clean_shard, *zip(*jobs)))
    dedupe([j[1] for j in jobs], root / "dedupe.tsv", root / "dedupe", threshold)
    seconds, cpu = time.perf_counter() - t0, cpu_seconds() - c0
    verdicts = {r["crop"]: r["verdict"] for j in jobs for r in read_tsv(j[1])}
    group = list(range(len(paths)))
    for r in read_tsv(root / "dedupe.tsv"):
        group[int(r["crop"].split("-")[0])] = len(paths) + int(r["cluster"].split("-")[0])
    return seconds, cpu, group, verdicts


def run_findimagedupes(paths: list[Path], threshold: str) -> tuple[float, float, list[int]]:
    """findimagedupes over the files (no fingerprint database): (seconds, CPU seconds, each path's group)."""
    index = {str(p): i for i, p in enumerate(paths)}
    t0, c0 = time.perf_counter(), cpu_seconds()
    out = subprocess.run(["findimagedupes", "-t", threshold, *index], capture_output=True, text=True, check=True)
    seconds, cpu = time.perf_counter() - t0, cpu_seconds() - c0
    group = list(range(len(paths)))
    for line in out.stdout.splitlines():
        members = [index[name] for name in line.split()]
        for i in members:
            group[i] = len(paths) + min(members)
    return seconds, cpu, group


def score(group: list[int], family: list[int], copies: list[int]) -> str:
    """Planted copies grouped with their original, and how many reported pairs are copies."""
    found = sum(group[i] == group[family[i]] for i in copies)
    members: dict[int, list[int]] = {}
    for i, g in enumerate(group):
        members.setdefault(g, []).append(i)
    pairs = [(a, b) for m in members.values() for j, a in enumerate(m) for b in m[j + 1:]]
    right = sum(family[a] == family[b] for a, b in pairs)
    return (f"recall {found}/{len(copies)} = {found / len(copies):.3f}, "
            f"precision {right}/{len(pairs)} = {right / max(len(pairs), 1):.3f}")


def images_benchmark(n: int, threshold: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "crops").mkdir()
        t0 = time.perf_counter()
        paths, family, kinds = make_crops(root / "crops", n)
        print(f"{len(paths)} crops ({', '.join(f'{len(v)} {k}' for k, v in kinds.items())}) built in "
              f"{time.perf_counter() - t0:.0f} s; clean in {SHARDS} jobs on {os.cpu_count()} cpus", flush=True)
        verdicts = {}
        for every_pixel in (False, True):
            seconds, cpu, group, verdicts[every_pixel] = run_ganflow(paths, root / f"ganflow-{every_pixel}",
                                                                     every_pixel, threshold)
            name = "every pixel" if every_pixel else "a sample"
            print(f"ganflow clean + dedupe (verdicts on {name:>11}): {seconds:6.1f} s ({cpu:6.1f} s CPU) "
                  f"{len(paths) / seconds:6.1f} images/s; {score(group, family, kinds['copy'])}; "
                  f"verdicts {dict(sorted(Counter(verdicts[every_pixel].values()).items()))}", flush=True)
        differ = sum(verdicts[True][c] != v for c, v in verdicts[False].items())
        print(f"crops whose verdict differs between the two: {differ} of {len(paths)}")
        if shutil.which("findimagedupes") is None:
            print("findimagedupes: not on PATH (Debian: apt-get install findimagedupes); skipped")
            return
        for fid_threshold in ("90%", "95%"):
            seconds, cpu, group = run_findimagedupes(paths, fid_threshold)
            print(f"findimagedupes -t {fid_threshold}:                     {seconds:6.1f} s ({cpu:6.1f} s CPU) "
                  f"{len(paths) / seconds:6.1f} images/s; {score(group, family, kinds['copy'])}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=700_000)
    ap.add_argument("--groups", type=int, default=20_000)
    ap.add_argument("--tight", type=int, default=0)
    ap.add_argument("--threshold", type=int, default=4)
    ap.add_argument("--shards", type=int, default=1000, help="shards for the end-to-end TSV run")
    ap.add_argument("--images", type=int, default=0, help="run clean + dedupe on this many real-art crops instead")
    args = ap.parse_args()
    if args.images:
        images_benchmark(args.images, args.threshold)
        return

    crops, sha, phash, areas, planted = make_data(args.n, args.groups, args.tight)
    print(f"{args.n} hashes, {len(planted)} planted groups "
          f"({sum(len(g) for g in planted)} crops), threshold {args.threshold}, "
          f"layout (blocks, must agree) = {block_layout(args.n, args.threshold)}")

    t0 = time.perf_counter()
    rows = find_clusters(crops, sha, phash, areas, args.threshold)
    t_find = time.perf_counter() - t0

    cluster = [r["cluster"] for r in rows]
    pairs = sum(len(g) - 1 for g in planted)
    found = sum(cluster[j] == cluster[g[0]] for g in planted for j in g[1:])
    in_planted = {j for g in planted for j in g}
    strays = sum(1 for i, r in enumerate(rows) if i not in in_planted and r["keep"] != 1)
    kinds = Counter(r["kind"] for r in rows)
    sizes = Counter(cluster)
    print(f"find_clusters: {t_find:.2f} s")
    print(f"recall of planted (base, copy) pairs: {found}/{pairs} = {found / pairs:.4f}")
    print(f"unplanted crops merged into a cluster: {strays}")
    print(f"clusters: {len(sizes)} (with duplicates: {sum(s > 1 for s in sizes.values())}, "
          f"largest {max(sizes.values())}); kinds: {dict(kinds)}")

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        manifests = []
        for s in range(args.shards):
            path = tmp / "clean" / f"{s:04d}.tsv"
            idx = range(s, args.n, args.shards)
            write_tsv(path, ({"crop": crops[i], "id": i, "width": int(areas[i] ** 0.5),
                              "height": int(areas[i] ** 0.5), "verdict": "kept",
                              "sha256": sha[i], "phash": phash[i]} for i in idx), CLEAN_COLUMNS)
            manifests.append(path)
        t0 = time.perf_counter()
        summary = dedupe(manifests, tmp / "dedupe.tsv", tmp / "dedupe", args.threshold)
        print(f"dedupe() end to end ({args.shards} manifests read, {args.shards + 1} written): "
              f"{time.perf_counter() - t0:.2f} s; {summary}")


if __name__ == "__main__":
    main()
