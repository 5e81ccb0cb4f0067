"""Near-duplicate clustering at Danbooru scale: 700k perceptual hashes in one process.

Random 64-bit hashes stand in for a dataset of distinct images, plus planted groups
(a base hash and copies with 1-3 bits flipped, some with identical pixels) whose members
must all land in one cluster; random hashes are ~1e-14 likely to be within 4 bits of
each other, so every other crop must stay alone. Prints wall time, recall and counts.

    .venv/bin/python -m benchmarks.bench_dedupe [--n 700000] [--groups 20000] [--tight 0]

--tight N adds one pathological group of N distinct hashes all within 3 bits of one
base (a huge bucket in every block combination), to show the quadratic worst case.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

from ganflow.dedupe import block_layout, dedupe, find_clusters
from ganflow.tables import write_tsv

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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=700_000)
    ap.add_argument("--groups", type=int, default=20_000)
    ap.add_argument("--tight", type=int, default=0)
    ap.add_argument("--threshold", type=int, default=4)
    ap.add_argument("--shards", type=int, default=1000, help="shards for the end-to-end TSV run")
    args = ap.parse_args()

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
