"""TFRecord shards of the final images for training (records.py reads them).

The classic StyleGAN dataset tool stored every level of detail of every image as raw uint8,
so a 512px JPEG dataset grew about 19x, and it died on the first odd file without naming it.
Here a record holds the image file's bytes as they are (no re-encode, no per-LOD copies) plus
its provenance; smaller training resolutions are made while reading, with JPEG's DCT-domain
downscale where the ratio allows. Shards are GZIP-framed: the JPEG headers that every file of
a dataset shares then cost almost nothing, which matters for small (64px) images.

A dataset directory is trusted only through its dataset.json, written last: shards are
written under temporary names and renamed, so a killed packing job leaves at most files that
no dataset.json lists.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
from collections import Counter, deque
from dataclasses import dataclass, field
from concurrent.futures import ThreadPoolExecutor
from itertools import islice
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np
import tensorflow as tf
from PIL import Image, ImageCms

from .config import defaults
from .imaging import ImageRejected, decode_srgb, sha256_file
from .records import COMPRESSION, DCT_METHOD, META
from .runlog import SetupError, progress
from .tables import atomic_open, atomic_path, read_tsv, write_tsv

log = logging.getLogger(__name__)

# Defaults of the config sections this module serves (config/schema.yaml).
_DEFAULTS = defaults("dataset")

SKIPPED = "skipped.tsv"
SKIPPED_COLUMNS = ["image", "path", "reason", "detail"]
MANIFEST_COLUMNS = ["image", "id", "path", "source", "box", "width", "height", "format", "sha256"]
_FORMATS = {"JPEG": "jpg", "PNG": "png"}


def pack(manifests: Sequence[str | os.PathLike], out_dir: str | os.PathLike, *,
         keep: str | os.PathLike | None = None, shards: int, seed: int,
         resolution: int | None = None, verbose: bool = _DEFAULTS["verbose"]) -> dict:
    """Pack the images listed in the images manifests into `shards` TFRecord shards.

    `resolution` None takes the most common square size in the manifests; manifest paths are
    read as written (relative ones from the current directory, the workflow root). Every
    file that cannot be packed is logged with its reason and listed in skipped.tsv. Returns
    the dataset.json content.
    """
    if shards < 1:
        raise SetupError(f"the dataset shard count is {shards}; set it to 1 or more")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    _clear(out_dir)
    rows, skipped, excluded = _candidates([Path(m) for m in manifests], keep)
    if resolution is None:
        resolution = _common_size(rows)
    rows = [rows[i] for i in np.random.default_rng(seed).permutation(len(rows))]
    n = max(1, min(shards, len(rows)))
    bounds = np.linspace(0, len(rows), n + 1).astype(int)
    loaded = _ordered(lambda row: _try_load(row, resolution), rows, workers=min(4, os.cpu_count() or 1))
    tally = _Tally(skipped=skipped)
    with progress(total=len(rows), desc=f"pack {out_dir}", unit="img") as bar:
        shard_meta = [_write_shard(out_dir / f"data-{i:03d}-of-{n:03d}.tfrecord",
                                   islice(loaded, int(bounds[i + 1] - bounds[i])), tally, bar, verbose)
                      for i in range(n)]
    write_tsv(out_dir / SKIPPED, skipped, SKIPPED_COLUMNS)
    reasons = ", ".join(f"{k} {reason}" for reason, k in Counter(s["reason"] for s in skipped).most_common())
    if not tally.ids:
        why = (f"all {len(skipped)} candidates were skipped ({reasons}); see {out_dir / SKIPPED}" if skipped
               else "the images manifests (and keep list) name no image")
        raise SetupError(f"no image could be packed into {out_dir}: {why}; fix the images stage or the keep list")
    meta = {
        "count": len(tally.ids),
        "resolution": resolution,
        "channels": 3,
        "format": "+".join(sorted(tally.formats)),
        "compression": COMPRESSION,
        "seed": seed,
        "source_bytes": tally.source_bytes,
        "record_bytes": tally.record_bytes,
        "packed_bytes": sum(s["bytes"] for s in shard_meta),
        "skipped": len(skipped),
        "excluded_by_keep": excluded,
        "shards": shard_meta,
        "ids": tally.ids,
    }
    with atomic_open(out_dir / META) as fh:
        json.dump(meta, fh, indent=1)
        fh.write("\n")
    log.info("packed %d images (%d px, %.3fx the source bytes) into %d shards in %s; %d skipped%s",
             meta["count"], resolution, meta["packed_bytes"] / tally.source_bytes, n, out_dir, len(skipped),
             f" ({reasons}), see {out_dir / SKIPPED}" if skipped else "")
    return meta


def _clear(out_dir: Path) -> None:
    """Remove a previous packing, dataset.json first, so no half-replaced set is ever trusted."""
    (out_dir / META).unlink(missing_ok=True)
    for pattern in ("data-*-of-*.tfrecord", ".data-*-of-*.tfrecord.*", f".{META}.*", f".{SKIPPED}.*"):
        for path in out_dir.glob(pattern):
            path.unlink()


def _candidates(manifests: list[Path], keep: str | os.PathLike | None) -> tuple[list[dict], list[dict], int]:
    """Manifest rows to pack (sorted by image id), rows skipped before reading, count excluded by keep."""
    rows: dict[str, dict] = {}
    skipped: list[dict] = []
    for manifest in manifests:
        for row in _read_manifest(manifest):
            if None in row or None in row.values() or not row["image"] or not row["path"]:
                skipped.append({"image": row.get("image") or "", "path": row.get("path") or "",
                                "reason": "malformed_row", "detail": f"{manifest}: {row}"})
            elif row["image"] in rows:
                skipped.append({"image": row["image"], "path": row["path"], "reason": "duplicate_id",
                                "detail": f"{manifest}: {row['image']} is already in "
                                          f"{rows[row['image']]['_manifest']}"})
            else:
                rows[row["image"]] = {**row, "_manifest": str(manifest)}
    excluded = 0
    if keep is not None:
        wanted = _read_keep(Path(keep))
        skipped += [{"image": image, "path": "", "reason": "not_in_manifest",
                     "detail": f"{keep} lists it but no images manifest does"}
                    for image in sorted(wanted - rows.keys())]
        excluded = len(rows.keys() - wanted)
        rows = {k: v for k, v in rows.items() if k in wanted}
    for row in skipped:
        log.warning("skipped %s: %s (%s)", row["path"] or row["image"], row["reason"], row["detail"])
    return [rows[k] for k in sorted(rows)], skipped, excluded


def _read_manifest(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        raise SetupError(f"images manifest {path} does not exist; run the images stage first")
    with open(path, encoding="utf-8") as fh:
        header = fh.readline().rstrip("\r\n").split("\t")
    missing = [c for c in MANIFEST_COLUMNS if c not in header]
    if missing:
        raise SetupError(f"{path} lacks the column(s) {', '.join(missing)}; an images manifest has "
                         f"{', '.join(MANIFEST_COLUMNS)}, upscale")
    return read_tsv(path)


def _read_keep(path: Path) -> set[str]:
    if not path.is_file():
        raise SetupError(f"keep list {path} does not exist; rerun the ranking of the previous round "
                         "or leave keep unset")
    rows = read_tsv(path)
    if rows and "image" not in rows[0]:
        raise SetupError(f"keep list {path} has no column 'image'; it must list the image ids to keep")
    return {r["image"] for r in rows}


def _common_size(rows: list[dict]) -> int:
    """The most common square size in the manifests (ties: the larger), 0 if none is square."""
    sizes = Counter(int(r["width"]) for r in rows if r["width"].isdigit() and r["width"] == r["height"])
    return max(sizes.items(), key=lambda kv: (kv[1], kv[0]))[0] if sizes else 0


def _ordered(fn: Callable, items: Iterable, workers: int) -> Iterator:
    """(item, fn(item)) in order, computed `workers` at a time, never holding more than a window."""
    with ThreadPoolExecutor(workers) as pool:
        pending: deque = deque()
        for item in items:
            pending.append((item, pool.submit(fn, item)))
            if len(pending) > 4 * workers:
                done, future = pending.popleft()
                yield done, future.result()
        while pending:
            done, future = pending.popleft()
            yield done, future.result()


@dataclass
class _Tally:
    """What the shards of one packing hold so far, for dataset.json and the log."""
    skipped: list[dict]
    ids: list[str] = field(default_factory=list)
    formats: Counter = field(default_factory=Counter)
    source_bytes: int = 0
    record_bytes: int = 0


def _write_shard(path: Path, loaded: Iterable, tally: _Tally, bar: progress, verbose: bool) -> dict:
    """Write one shard under a temporary name, renamed onto `path` only once complete."""
    count = 0
    with atomic_path(path) as tmp:
        with tf.io.TFRecordWriter(str(tmp), tf.io.TFRecordOptions(compression_type=COMPRESSION)) as writer:
            for row, result in loaded:
                bar.update()
                if isinstance(result, ImageRejected):
                    tally.skipped.append(_skip(row, result))
                    continue
                data, fmt, digest = result
                record = _example(row, data, fmt, digest)
                writer.write(record)
                if verbose:
                    log.info("packed %s (%s)", row["path"], row["image"])
                tally.ids.append(row["image"])
                tally.formats[fmt] += 1
                tally.source_bytes += len(data)
                tally.record_bytes += len(record) + 16  # TFRecord framing: length and two CRCs
                count += 1
        return {"file": path.name, "count": count, "bytes": tmp.stat().st_size, "sha256": sha256_file(tmp)}


def _try_load(row: dict, resolution: int) -> tuple[bytes, str, bytes] | ImageRejected:
    try:
        return _load(row, resolution)
    except ImageRejected as exc:
        return exc


def _load(row: dict, resolution: int) -> tuple[bytes, str, bytes]:
    """The file's bytes, its format and sha256 digest, once the reader is sure to decode it
    exactly as load_srgb would; otherwise ImageRejected."""
    path = row["path"]
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError as exc:
        raise ImageRejected("missing", f"{path} does not exist") from exc
    except OSError as exc:
        raise ImageRejected("unreadable", f"{path}: {exc.strerror or exc}") from exc
    if not data:
        raise ImageRejected("empty", path)
    digest = hashlib.sha256(data).digest()
    if row["sha256"] and digest.hex() != row["sha256"]:
        raise ImageRejected("sha256_mismatch", f"{path} changed after the images manifest was written")
    try:
        header = Image.open(io.BytesIO(data))
    except (OSError, SyntaxError, ValueError):
        decode_srgb(data, path)  # raises with the reason load_srgb would give
        raise ImageRejected("undecodable", f"{path}: PIL cannot identify it")
    fmt = _FORMATS.get(header.format or "")
    if fmt is None:
        raise ImageRejected("unsupported_format", f"{path} is {header.format}; the dataset holds JPEG and PNG")
    if header.mode != "RGB":
        raise ImageRejected("not_rgb", f"{path} is {header.mode}; the images stage writes RGB")
    icc = header.info.get("icc_profile")
    if icc and not _is_srgb(icc):
        raise ImageRejected("icc_profile", f"{path} embeds a non-sRGB colour profile that the reader would ignore")
    if header.size != (resolution, resolution):
        raise ImageRejected("wrong_size", f"{path} is {header.size[0]}x{header.size[1]}, "
                                          f"the dataset is {resolution}x{resolution}")
    try:
        (tf.io.decode_jpeg(data, channels=3, dct_method=DCT_METHOD) if fmt == "jpg"
         else tf.io.decode_png(data, channels=3))
    except tf.errors.InvalidArgumentError as exc:
        decode_srgb(data, path)  # prefer load_srgb's reason (e.g. truncated) when it has one
        raise ImageRejected("undecodable", f"{path}: TensorFlow cannot decode it ({exc.message})") from exc
    return data, fmt, digest


def _is_srgb(icc: bytes) -> bool:
    try:
        return "srgb" in ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(icc))).lower()
    except (ImageCms.PyCMSError, OSError, ValueError):
        return False


def _example(row: dict, data: bytes, fmt: str, digest: bytes) -> bytes:
    values = {"image": data, "id": row["image"].encode(), "source_id": row["id"].encode(),
              "source": row["source"].encode(), "box": row["box"].encode(), "format": fmt.encode(),
              "sha256": digest}
    return tf.train.Example(features=tf.train.Features(feature={
        k: tf.train.Feature(bytes_list=tf.train.BytesList(value=[v])) for k, v in values.items()
    })).SerializeToString(deterministic=True)  # map fields in key order: same rows, same bytes


def _skip(row: dict, exc: ImageRejected) -> dict:
    log.warning("skipped %s: %s (%s)", row["path"], exc.reason, exc.detail)
    return {"image": row["image"], "path": row["path"], "reason": exc.reason, "detail": exc.detail}


