"""Global near-duplicate clusters over the perceptual hashes of every kept crop.

Duplicates cross shard boundaries (a re-upload gets a new id, hence another shard), so
clustering runs once over the whole dataset. An all-pairs comparison of 700k hashes is
2.4e11 pairs; instead, multi-index hashing finds every pair within `threshold` bits by
pigeonhole: cut the 64 bits into k > threshold blocks, and any such pair agrees exactly
on at least k - threshold of them, so only hashes sharing one such block combination
are compared. Clusters are the transitive closure (union-find) of exact (sha256) and
near (Hamming) pairs; exactly one crop per cluster is kept: the best copy, not the
largest, since an upscaled re-encode is larger than its original and worse.

Crop hashes alone miss copies of one illustration at another scale: the detector's box
lands a little differently on each copy, so their crops differ by more than the threshold
(6-18 bits). Sources are therefore clustered too, with the same machinery, by two hashes
each: of the whole image and of its centre (90% of each side). Resizing and re-encoding
move the whole-image hash by 0-2 bits; a copy cut to its centre (85-95%, or shifted a
little) has a whole-image hash within 0-10 bits of the original's centre hash, where the
two whole-image hashes lie 6-22 apart; distinct portraits of the test art lie 14 or more
apart either way (median 32). One looser threshold on the whole-image hash would do
without the centre hash, but multi-index hashing grows steeply with the threshold: 12
bits take minutes at 700k sources, two hashes at 8 bits half a minute.

Within two such copies, faces pair up by place (each the other's nearest, relative to the
image size, which a recrop moves only a little) and are one face when the faces
themselves agree (their detector box grown a little, whatever the framing of the crop):
perceptual hashes within a looser threshold and mean colours close. Neither place nor the
grey hashes suffice alone: the demo's drawings share one layout and one line art and
differ in colour.
"""

from __future__ import annotations

import itertools
import logging
import math
import os
from collections import Counter
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from .config import defaults
from .runlog import SetupError
from .tables import read_tsv, write_tsv

log = logging.getLogger(__name__)

# Defaults of the config sections this module serves (config/schema.yaml).
_DEFAULTS = defaults("dedupe")

DEDUPE_COLUMNS = ["crop", "cluster", "keep", "kind", "distance", "why"]
# lossless, quality and upscaled are optional: a table without them compares copies by size;
# so are the source_* and face_* columns: without them crops match by their own hashes only.
CLEAN_NEEDED = ("crop", "verdict", "width", "height", "sha256", "phash")
HASH_BITS = 64
# Source matching scales with the crop threshold t (0 turns it off): at t = 4, sources whose
# whole or centre hashes lie within 8 bits are copies of one illustration, and their
# corresponding faces within 12 bits are copies of one face if their mean colours also
# agree within COLOUR_LEVELS on every channel (0-255). Measured on copies of the test art
# and the demo's: faces of copies 0-12 bits and 0-2.4 levels apart; different faces drawn
# alike (the demo's templates, in copies-like sources) 10-12 bits apart with 5-76 levels,
# 14 with 6.7 or more.
SOURCE_FACTOR = 2
FACE_FACTOR = 3
COLOUR_LEVELS = 4
# The clean settings that reject crops for each reason, for the message when none is left.
_CLEAN_KEYS = {"too_small": "clean.min_side", "grayscale": "clean.gray_chroma", "monochrome": "clean.mono_std"}

# Relative costs per element of one argsort and per compared candidate pair, used to pick
# the block layout; only their ratio matters (measured with numpy 2.4 on uint64 arrays).
_SORT_COST = 4.0
_PAIR_COST = 1.0
_MAX_COMBINATIONS = 5000


def parse_phash(value: str | int | None) -> int | None:
    """A 64-bit hash from 16 hex chars (or an int), None when missing or malformed."""
    if value is None or value == "":
        return None
    if isinstance(value, (int, np.integer)):
        return int(value) if 0 <= value < 1 << HASH_BITS else None
    text = value.strip()
    if len(text) != HASH_BITS // 4:
        return None
    try:
        return int(text, 16)
    except ValueError:
        return None


def find_clusters(crops: Sequence[str], sha256: Sequence[str], phash: Sequence[str | int | None],
                  areas: Sequence[int], threshold: int = _DEFAULTS["threshold"], *, lossless: Sequence[bool] | None = None,
                  upscaled: Sequence[bool] | None = None, quality: Sequence[int] | None = None,
                  sources: Sequence[str] | None = None, source_phash: Sequence[Sequence[str | int | None]] | None = None,
                  boxes: np.ndarray | None = None, face_phash: Sequence[str | int | None] | None = None,
                  face_rgb: np.ndarray | None = None) -> list[dict]:
    """One row per crop (input order): crop, cluster (id of the kept crop), keep (1/0),
    kind (unique = the kept crop itself, exact = same pixels as it, near = similar,
    source = a copy of its face in a copy of its source: resized, re-encoded, recropped),
    distance (Hamming bits to the kept crop; empty when a hash is missing) and why (on the
    kept crop of a cluster of several: what made it beat the runner-up).

    The kept crop is the best copy: from a lossless source over a lossy one, native
    pixels over upscaled ones, higher JPEG quality (0: unknown), larger (width*height),
    then the smallest crop id, so the choice does not depend on input order. Crops
    without a usable phash only join clusters through an identical sha256, or as copies
    of a face in a copy of their source. `sources` (the source id of each crop), its
    `source_phash` (per crop, the same number of hashes: of its whole source, of its centre),
    `boxes` (n x 4: the crop's box as x0, y0, x1, y1 shares of its source's size), the hash
    of each crop's face and its mean colour `face_rgb` (n x 3) turn source matching on; NaN
    where unknown.
    """
    n = len(crops)
    columns = [np.zeros(n, dtype=np.int64) if c is None else np.asarray(c, dtype=np.int64)
               for c in (areas, lossless, upscaled, quality)]
    source_columns = [] if sources is None else [sources, source_phash, boxes, face_phash, face_rgb]
    if not (len(sha256) == len(phash) == n and all(len(c) == n for c in columns + source_columns)):
        raise ValueError("find_clusters needs crops, sha256, phash, areas, lossless, upscaled, quality "
                         "and (with sources) source_phash, boxes, face_phash and face_rgb of equal length")
    areas, lossless, upscaled, quality = columns
    if not 0 <= threshold <= HASH_BITS // 2:
        raise ValueError(f"dedupe threshold must be 0..{HASH_BITS // 2} bits, got {threshold}")
    if n == 0:
        return []
    hashes, valid = _parse_all(phash)
    edges = [_same_value_edges(sha256), _hash_edges(hashes, valid, threshold)]
    if sources is not None:
        width = len(source_phash[0])  # hashes per source: whole, centre
        source_hashes, source_valid = _parse_all([p for h in source_phash for p in h])
        source_hashes, source_valid = source_hashes.reshape(n, width), source_valid.reshape(n, width) & (threshold > 0)
        source_of, source_label = _source_clusters(sources, source_hashes, source_valid, threshold)
        edges.append(_copy_edges(source_of, source_label, source_hashes, source_valid,
                                 np.asarray(boxes, dtype=np.float64), *_parse_all(face_phash),
                                 np.asarray(face_rgb, dtype=np.float64), threshold))
        source_cluster = source_label[source_of]
    else:
        source_of = source_cluster = np.arange(n)  # every crop its own source: no source copies
    labels = connected_components(n, np.concatenate([e[0] for e in edges]),
                                  np.concatenate([e[1] for e in edges]))

    keeper, runner_up = _keepers(labels, (-lossless, upscaled, -quality, -areas), crops)
    both = valid & valid[keeper]
    distance = np.bitwise_count(hashes ^ hashes[keeper]).astype(np.int64)
    # a copy from a copy of the kept crop's source, unless its own hash already says near
    source_copy = ((source_cluster == source_cluster[keeper]) & (source_of != source_of[keeper])
                   & ~(both & (distance <= threshold)))
    rows = []
    for i in range(n):
        k = int(keeper[i])
        same_pixels = i == k or bool(sha256[i] and sha256[i] == sha256[k])
        rows.append({
            "crop": crops[i],
            "cluster": crops[k],
            "keep": 1 if i == k else 0,
            "kind": "unique" if i == k else ("exact" if same_pixels else "source" if source_copy[i] else "near"),
            "distance": int(distance[i]) if both[i] else (0 if same_pixels else ""),
            "why": _why(k, int(runner_up[i]), lossless, upscaled, quality, areas) if i == k else "",
        })
    return rows


def _parse_all(phash: Sequence[str | int | None]) -> tuple[np.ndarray, np.ndarray]:
    """(uint64 hashes, whether each was usable): a missing or malformed one is 0 and False."""
    parsed = [parse_phash(p) for p in phash]
    valid = np.fromiter((p is not None for p in parsed), dtype=bool, count=len(parsed))
    return np.fromiter((p or 0 for p in parsed), dtype=np.uint64, count=len(parsed)), valid


def _hash_edges(hashes: np.ndarray, valid: np.ndarray, threshold: int) -> tuple[np.ndarray, np.ndarray]:
    """Edges joining the usable hashes within `threshold` bits: identical ones to their
    first occurrence, so that each distinct hash is compared once."""
    hashed = np.flatnonzero(valid)
    uniq, inverse = np.unique(hashes[hashed], return_inverse=True)
    first = np.full(len(uniq), len(hashes), dtype=np.int64)
    np.minimum.at(first, inverse, hashed)  # one representative per distinct hash
    ua, ub = near_pairs(uniq, threshold)
    return np.r_[hashed, first[ua]], np.r_[first[inverse], first[ub]]


def _source_clusters(sources: Sequence[str], hashes: np.ndarray, valid: np.ndarray,
                     threshold: int) -> tuple[np.ndarray, np.ndarray]:
    """(the index of each crop's source, the cluster of each source) from each crop's source
    hashes (n x k): a source has one of its hashes within SOURCE_FACTOR * threshold bits of
    one of another source's in its cluster."""
    names, source_of = np.unique(np.asarray(sources, dtype=str), return_inverse=True)
    per_source = np.zeros((len(names), hashes.shape[1]), dtype=np.uint64)
    usable = np.zeros(per_source.shape, dtype=bool)
    per_source[source_of], usable[source_of] = hashes, valid  # the crops of a source share its hashes
    owner = np.repeat(np.arange(len(names)), hashes.shape[1])
    a, b = _hash_edges(per_source.ravel(), usable.ravel(), min(SOURCE_FACTOR * threshold, HASH_BITS // 2))
    return source_of, connected_components(len(names), owner[a], owner[b])


def _copy_edges(source_of: np.ndarray, source_label: np.ndarray, source_hashes: np.ndarray,
                source_valid: np.ndarray, boxes: np.ndarray, hashes: np.ndarray, valid: np.ndarray,
                colours: np.ndarray, threshold: int) -> tuple[np.ndarray, np.ndarray]:
    """Edges joining crops that show one face in two copies of an illustration: their sources
    within SOURCE_FACTOR * threshold bits of each other (not merely chained through a third),
    each face the other's nearest in the other copy (box centres as shares of the image
    size), face hashes within FACE_FACTOR * threshold bits and mean colours within
    COLOUR_LEVELS. Only source clusters of several sources are searched, pair by pair (they
    are small)."""
    label = source_label[source_of]
    several = np.bincount(source_label, minlength=len(source_label)) > 1
    candidates = np.flatnonzero(several[label])
    order = candidates[np.argsort(label[candidates], kind="stable")]
    found_a, found_b = [np.empty(0, dtype=np.int64)], [np.empty(0, dtype=np.int64)]
    for a, b in _pairs_in_runs(label[order], order):
        bits = np.bitwise_count(source_hashes[a][:, :, None] ^ source_hashes[b][:, None, :])
        usable = source_valid[a][:, :, None] & source_valid[b][:, None, :]
        nearest_pair = np.where(usable, bits, HASH_BITS + 1).min(axis=(1, 2))
        copies = (source_of[a] != source_of[b]) & (nearest_pair <= SOURCE_FACTOR * threshold)
        found_a.append(a[copies])
        found_b.append(b[copies])
    a, b = np.concatenate(found_a), np.concatenate(found_b)
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2
    dist = np.hypot(*(centres[a] - centres[b]).T)
    # nearest: no face of the other copy lies closer (checked both ways); an unknown place never is
    first, second, both_ways = np.r_[a, b], np.r_[b, a], np.r_[dist, dist]
    _, group = np.unique(first * len(source_label) + source_of[second], return_inverse=True)
    closest = np.full(group.max(initial=-1) + 1, np.inf)
    np.minimum.at(closest, group, both_ways)
    nearest = both_ways <= closest[group]
    close = valid[a] & valid[b] & (np.bitwise_count(hashes[a] ^ hashes[b]) <= FACE_FACTOR * threshold)
    alike = np.abs(colours[a] - colours[b]).max(axis=1) <= COLOUR_LEVELS  # NaN: never
    same_face = nearest[:len(a)] & nearest[len(a):] & close & alike
    return a[same_face], b[same_face]


def _why(k: int, r: int, lossless: np.ndarray, upscaled: np.ndarray, quality: np.ndarray,
         areas: np.ndarray) -> str:
    """What made crop k win over r, the runner-up of its cluster (empty when k is alone)."""
    if r < 0:
        return ""
    if lossless[k] != lossless[r]:
        return "lossless over lossy"
    if upscaled[k] != upscaled[r]:
        return "native pixels over upscaled"
    if quality[k] != quality[r]:
        return f"jpeg q{quality[k]} > " + (f"q{quality[r]}" if quality[r] else "unknown quality")
    if areas[k] != areas[r]:
        return f"larger: {areas[k]} > {areas[r]} px"
    return "equal: smallest crop id"


def near_pairs(hashes: np.ndarray, threshold: int) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs (i < j) of distinct uint64 `hashes` within `threshold` Hamming bits.

    Exact for any input; fast when buckets are small, which the block layout chosen by
    `block_layout` makes likely for well-spread perceptual hashes.
    """
    m = len(hashes)
    empty = np.empty(0, dtype=np.int64)
    if threshold == 0 or m < 2:
        return empty, empty
    hashes = np.asarray(hashes, dtype=np.uint64)
    blocks, agree = block_layout(m, threshold)
    edges = np.linspace(0, HASH_BITS, blocks + 1).round().astype(int)
    masks = [((1 << int(hi)) - 1) ^ ((1 << int(lo)) - 1) for lo, hi in zip(edges[:-1], edges[1:])]
    found_a, found_b = [], []
    for combo in itertools.combinations(masks, agree):
        keys = hashes & np.uint64(sum(combo))
        order = np.argsort(keys)
        a, b = _close_in_runs(hashes, keys[order], order, threshold)
        found_a.append(a)
        found_b.append(b)
    a, b = np.concatenate(found_a), np.concatenate(found_b)
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    code = np.unique(lo * m + hi)  # a close pair agrees on several combinations
    return code // m, code % m


def block_layout(m: int, threshold: int) -> tuple[int, int]:
    """(blocks, blocks that must agree): the cheapest pigeonhole layout for m hashes.

    More, shorter blocks that must agree in larger combinations make longer keys, hence
    fewer chance collisions, at the price of more sorts; the estimate assumes uniform bits.
    """
    best: tuple[float, int, int] | None = None
    for blocks in range(threshold + 1, HASH_BITS + 1):
        agree = blocks - threshold
        combos = math.comb(blocks, agree)
        if combos > _MAX_COMBINATIONS:
            continue
        key_bits = HASH_BITS * agree / blocks
        cost = combos * (_SORT_COST * m + _PAIR_COST * m * m / 2 / 2.0 ** key_bits)
        if best is None or cost < best[0]:
            best = (cost, blocks, agree)
    assert best is not None  # blocks = threshold + 1 always qualifies
    return best[1], best[2]


def _close_in_runs(hashes: np.ndarray, sorted_keys: np.ndarray, order: np.ndarray,
                   threshold: int) -> tuple[np.ndarray, np.ndarray]:
    """Close pairs among hashes with equal keys."""
    found_a, found_b = [np.empty(0, dtype=np.int64)], [np.empty(0, dtype=np.int64)]
    for a, b in _pairs_in_runs(sorted_keys, order):
        close = np.bitwise_count(hashes[a] ^ hashes[b]) <= threshold
        found_a.append(a[close])
        found_b.append(b[close])
    return np.concatenate(found_a), np.concatenate(found_b)


def _pairs_in_runs(sorted_keys: np.ndarray, order: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Every pair of items with equal keys, in batches: each item with its d-th successor
    in its run, for d = 1, 2, ... while any run is longer than d (all vectorised)."""
    m = len(sorted_keys)
    starts = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])
    ends = np.r_[starts[1:], m]
    run_end = np.repeat(ends, ends - starts)
    active = np.flatnonzero(run_end - np.arange(m) > 1)
    d = 1
    while active.size:
        yield order[active], order[active + d]
        d += 1
        active = active[run_end[active] > active + d]


def connected_components(n: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Union-find over edges (a[i], b[i]), vectorised: hook each root onto the smallest
    root it touches, compress paths by pointer jumping, repeat until no edge spans two
    roots. Returns, for every node, the smallest node of its component."""
    parent = np.arange(n, dtype=np.int64)
    a, b = np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)
    while a.size:
        parent = _compress(parent)
        ra, rb = parent[a], parent[b]
        apart = ra != rb
        a, b, ra, rb = a[apart], b[apart], ra[apart], rb[apart]
        np.minimum.at(parent, np.maximum(ra, rb), np.minimum(ra, rb))  # parents only decrease
    return _compress(parent)


def _compress(parent: np.ndarray) -> np.ndarray:
    while True:
        grand = parent[parent]
        if np.array_equal(grand, parent):
            return parent
        parent = grand


def _same_value_edges(values: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Edges joining each non-empty value's occurrences to its first occurrence."""
    first: dict[str, int] = {}
    rep = np.fromiter((first.setdefault(v, i) if v else i for i, v in enumerate(values)),
                      dtype=np.int64, count=len(values))
    linked = np.flatnonzero(rep != np.arange(len(values)))
    return linked, rep[linked]


def _keepers(labels: np.ndarray, merit: Sequence[np.ndarray], crops: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """For every crop, the indices of its cluster's kept crop and runner-up (-1 when the
    cluster has one crop): the lowest `merit` keys, compared in order, then the smallest id."""
    n = len(labels)
    name_rank = np.empty(n, dtype=np.int64)
    name_rank[np.argsort(np.asarray(crops, dtype=str), kind="stable")] = np.arange(n)
    order = np.lexsort((name_rank, *reversed(merit), labels))
    sorted_labels = labels[order]
    starts = np.flatnonzero(np.r_[True, sorted_labels[1:] != sorted_labels[:-1]])
    seconds = np.minimum(starts + 1, n - 1)
    paired = (starts + 1 < n) & (sorted_labels[seconds] == sorted_labels[starts])
    keeper_of_label = np.empty(n, dtype=np.int64)
    keeper_of_label[sorted_labels[starts]] = order[starts]
    runner_of_label = np.full(n, -1, dtype=np.int64)
    runner_of_label[sorted_labels[starts[paired]]] = order[seconds[paired]]
    return keeper_of_label[labels], runner_of_label[labels]


def dedupe(clean_tsvs: Sequence[str | os.PathLike], out_tsv: str | os.PathLike,
           shard_dir: str | os.PathLike, threshold: int = _DEFAULTS["threshold"]) -> dict:
    """Cluster every kept crop of all clean manifests; write dedupe.tsv and one
    dedupe/{shard}.tsv per input manifest (even when empty), so each images shard
    depends only on its own slice. Returns counts for the report. An empty shard is
    normal; no kept crop in any shard is a SetupError naming the settings to change."""
    crops: list[str] = []
    sha: list[str] = []
    phash: list[str] = []
    areas: list[int] = []
    lossless: list[bool] = []
    upscaled: list[bool] = []
    quality: list[int] = []
    sources: list[str] = []
    source_phash: list[tuple[str, str]] = []
    boxes: list[tuple[float, float, float, float]] = []
    face_phash: list[str] = []
    face_rgb: list[tuple[float, ...]] = []
    shard_of: list[int] = []
    verdicts: Counter = Counter()
    stems = [Path(p).stem for p in clean_tsvs]
    for s, path in enumerate(clean_tsvs):
        rows = read_tsv(path)
        missing = [c for c in CLEAN_NEEDED if rows and c not in rows[0]]
        if missing:
            raise SetupError(f"clean manifest {path} lacks column(s) {', '.join(missing)}; "
                             "rebuild it with the clean stage of this version")
        for row in rows:
            verdicts[row["verdict"]] += 1
            if row["verdict"] != "kept":
                continue
            crops.append(row["crop"])
            sha.append(row["sha256"] or "")
            phash.append(row["phash"] or "")
            areas.append(_int(row["width"]) * _int(row["height"]))
            lossless.append(row.get("lossless") == "1")
            upscaled.append(row.get("upscaled") == "1")
            quality.append(_int(row.get("quality")))
            sources.append(row["id"])
            source_phash.append((row.get("source_phash") or "", row.get("source_centre_phash") or ""))
            boxes.append(_relative_box(row.get("box"), row.get("source_size")))
            face_phash.append(row.get("face_phash") or "")
            face_rgb.append(_numbers(row.get("face_rgb"), ",", 3))
            shard_of.append(s)
    if not crops:
        raise SetupError(_nothing_kept(verdicts, len(stems)))
    out = find_clusters(crops, sha, phash, areas, threshold, lossless=lossless, upscaled=upscaled, quality=quality,
                        sources=sources, source_phash=source_phash, boxes=np.asarray(boxes, dtype=np.float64),
                        face_phash=face_phash, face_rgb=np.asarray(face_rgb, dtype=np.float64))
    write_tsv(out_tsv, out, DEDUPE_COLUMNS)
    per_shard: list[list[dict]] = [[] for _ in stems]
    for s, row in zip(shard_of, out):
        per_shard[s].append(row)
    for stem, rows in zip(stems, per_shard):
        write_tsv(Path(shard_dir) / f"{stem}.tsv", rows, DEDUPE_COLUMNS)

    unhashed = sum(parse_phash(p) is None for p in phash)
    if unhashed:
        log.warning("%d kept crops have no valid phash; they were deduplicated by sha256 only", unhashed)
    sizes = Counter(r["cluster"] for r in out).values()
    kinds = Counter(r["kind"] for r in out)
    summary = {
        "crops": len(out),
        "kept": int(sum(r["keep"] for r in out)),
        "removed_exact": kinds["exact"],
        "removed_near": kinds["near"],
        "removed_source": kinds["source"],
        "clusters_with_duplicates": sum(size > 1 for size in sizes),
        "largest_cluster": max(sizes, default=0),
        "sources": len(set(sources)),
        "sources_unhashed": len({i for i, h in zip(sources, source_phash) if parse_phash(h[0]) is None}),
        "unhashed": unhashed,
        "shards": len(stems),
        "threshold": threshold,
    }
    why = Counter(_why_kind(r["why"]) for r in out if r["why"])
    log.info("dedupe: %d kept crops of %d sources in %d shards: %d kept, dropped %d exact, %d near and %d source "
             "duplicates (copies of a face in a resized, re-encoded or recropped copy of its source); %d clusters "
             "with duplicates, the largest %d; the kept copy won by: %s; %d sources without a source hash were "
             "matched by their crops' hashes only", summary["crops"], summary["sources"], summary["shards"],
             summary["kept"], kinds["exact"], kinds["near"], kinds["source"], summary["clusters_with_duplicates"],
             summary["largest_cluster"], ", ".join(f"{k} {n}" for k, n in sorted(why.items())) or "-",
             summary["sources_unhashed"])
    return summary


def _why_kind(why: str) -> str:
    """The rule of a `why` without its numbers ("larger: 400 > 100 px" -> "larger"), for counting."""
    return "higher jpeg quality" if why.startswith("jpeg q") else why.split(":")[0]


def _relative_box(box: str | None, size: str | None) -> tuple[float, ...]:
    """A crop box "x,y,w,h" as shares (x0, y0, x1, y1) of its source's "WxH"; NaNs when
    either is missing or malformed (a crop of a whole image has no box)."""
    x, y, w, h = _numbers(box, ",", 4)
    width, height = _numbers(size, "x", 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        return tuple(np.float64(v) / s for v, s in ((x, width), (y, height), (x + w, width), (y + h, height)))


def _numbers(text: str | None, sep: str, count: int) -> tuple[float, ...]:
    """`count` numbers from a manifest cell such as "12,5,80"; NaNs when missing or malformed."""
    try:
        values = tuple(float(v) for v in text.split(sep))
    except (AttributeError, ValueError):
        return (math.nan,) * count
    return values if len(values) == count else (math.nan,) * count


def _nothing_kept(verdicts: Counter, manifests: int) -> str:
    """The one sentence for a dataset the data stages emptied, naming the keys to change."""
    if not verdicts:
        return (f"the faces stage made no crop at all (all {manifests} clean manifests are empty: no face "
                "found or no image decoded, see faces/*.tsv); lower faces.min_size or faces.min_neighbors, "
                "or set faces.enabled: false if the images are already face crops")
    reasons = ", ".join(f"{reason} {n}" for reason, n in sorted(verdicts.items()))
    keys = [key for reason, key in _CLEAN_KEYS.items() if reason in verdicts]
    fix = f"loosen {' / '.join(keys)}" if keys else "see clean/*.tsv for why each crop was rejected"
    return f"the clean stage kept none of the {sum(verdicts.values())} face crops ({reasons}); {fix}"


def _int(text: str | None) -> int:
    """A number from a manifest cell; a missing or malformed one counts as 0 so that crop loses ties."""
    try:
        return int(text)
    except (TypeError, ValueError):
        return 0
