"""TFRecord shards of the final images for training, and the readers that feed training and ranking.

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

from .imaging import ImageRejected, decode_srgb, sha256_file
from .runlog import SetupError, progress
from .tables import atomic_open, atomic_path, read_tsv, write_tsv

log = logging.getLogger(__name__)

META = "dataset.json"
SKIPPED = "skipped.tsv"
SKIPPED_COLUMNS = ["image", "path", "reason", "detail"]
MANIFEST_COLUMNS = ["image", "id", "path", "source", "box", "width", "height", "format", "sha256"]
COMPRESSION = "GZIP"
# libjpeg's accurate integer IDCT: the one PIL uses, so reading is bit-exact with load_srgb.
# TensorFlow's default (IFAST) differs from it by up to ~6 levels.
DCT_METHOD = "INTEGER_ACCURATE"
_FORMATS = {"JPEG": "jpg", "PNG": "png"}
# A record is a tf.train.Example of bytes features: image (the file's bytes), id (image id),
# source_id, source (source file path), box ("x,y,w,h" in the source, as in the manifest),
# format (jpg | png) and sha256 (the 32-byte digest of image).
_RECORD_FIELDS = ["image", "id", "source_id", "source", "box", "format", "sha256"]


def pack(manifests: Sequence[str | os.PathLike], out_dir: str | os.PathLike, *,
         keep: str | os.PathLike | None = None, shards: int, seed: int,
         resolution: int | None = None, verbose: bool = False) -> dict:
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


def read_meta(dataset_dir: str | os.PathLike) -> dict:
    """dataset.json, after checking that every shard it lists is there with its recorded size."""
    dataset_dir = Path(dataset_dir)
    path = dataset_dir / META
    if not path.is_file():
        raise SetupError(f"{dataset_dir} has no {META}: it was never packed or its packing was "
                         "interrupted; rerun the dataset rule")
    meta = json.loads(path.read_text(encoding="utf-8"))
    for shard in meta["shards"]:
        file = dataset_dir / shard["file"]
        if not file.is_file() or file.stat().st_size != shard["bytes"]:
            raise SetupError(f"shard {file} is missing or not the size {path} records: the directory "
                             "changed after packing; rerun the dataset rule")
    return meta


def verify(dataset_dir: str | os.PathLike) -> dict:
    """Read every record back; check shard hashes, counts, ids and each image's sha256.

    Returns {"ok", "count", "shards", "problems"}; problems are sentences naming the shard.
    """
    dataset_dir = Path(dataset_dir)
    meta = read_meta(dataset_dir)
    problems: list[str] = []
    ids: list[str] = []
    for shard in meta["shards"]:
        file = dataset_dir / shard["file"]
        if sha256_file(file) != shard["sha256"]:
            problems.append(f"{file}: sha256 differs from {META}")
        count = 0
        try:
            for record in tf.data.TFRecordDataset(str(file), compression_type=COMPRESSION).as_numpy_iterator():
                fields = _fields(record)
                count += 1
                ids.append(fields["id"].decode())
                if hashlib.sha256(fields["image"]).digest() != fields["sha256"]:
                    problems.append(f"{file}: image {fields['id'].decode()} does not match its sha256")
        except tf.errors.OpError as exc:
            problems.append(f"{file}: unreadable after {count} records ({exc.message})")
        if count != shard["count"]:
            problems.append(f"{file}: {count} records, {META} says {shard['count']}")
    if len(ids) != meta["count"]:
        problems.append(f"{dataset_dir}: {len(ids)} records in all, {META} says {meta['count']}")
    elif ids != meta["ids"]:
        problems.append(f"{dataset_dir}: record ids differ from the id list in {META}")
    return {"ok": not problems, "count": len(ids), "shards": len(meta["shards"]), "problems": problems}


def training_dataset(dataset_dir: str | os.PathLike, resolution: int, batch_size: int, *,
                     mirror: bool = False, shuffle_buffer: int = 2048, seed: int = 0,
                     repeat: bool = True, dct_downscale: bool = True, start: int = 0) -> tf.data.Dataset:
    """Batches of float32 NHWC images in [-1, 1] at `resolution`, decoded in parallel.

    The order is a pure function of (seed, position in the stream), so that a resumed
    training run reads what the killed one would have read: each pass over the data is
    its own permutation of the records (_pass_records). `start` begins the stream at that
    image, reading past the records before it without decoding them: training resumes so.
    With `repeat` the stream is endless and its batches full (a static batch size for
    compiled training steps); without, it is one pass.
    """
    dataset_dir = Path(dataset_dir)
    meta = read_meta(dataset_dir)
    decode = _decoder(meta, dataset_dir, resolution, dct_downscale)
    first_pass, offset = divmod(start, meta["count"])
    passes = tf.data.Dataset.counter(first_pass) if repeat else tf.data.Dataset.range(first_pass, first_pass + 1)
    files = [str(dataset_dir / s["file"]) for s in meta["shards"]]
    records = passes.flat_map(_pass_records(files, seed, shuffle_buffer)).skip(offset)

    def prepare(index: tf.Tensor, record: tf.Tensor) -> tf.Tensor:
        image = decode(record)[1]
        if mirror:  # a coin per (seed, position in the stream): reproducible, and new every epoch
            coin = tf.random.stateless_uniform([], seed=tf.stack([tf.constant(seed, tf.int64), index]))
            image = tf.cond(coin < 0.5, lambda: tf.reverse(image, axis=[1]), lambda: image)
        return image / 127.5 - 1.0

    images = records.enumerate(start).map(prepare, num_parallel_calls=tf.data.AUTOTUNE)
    return images.batch(batch_size, drop_remainder=repeat).prefetch(tf.data.AUTOTUNE)


def _pass_records(files: list[str], seed: int, window: int) -> Callable[[tf.Tensor], tf.data.Dataset]:
    """pass number -> that pass's encoded records: the shards in an order drawn from (seed,
    pass), interleaved, then each run of `window` records permuted by (seed, pass, run).

    Shuffling through windows rather than a shuffle buffer keeps memory at one window of
    encoded records while making every position computable, which a resume needs.
    `window` <= 1 reads the shards in their packed order every pass.
    """
    names = tf.constant(files)

    def records(pass_number: tf.Tensor) -> tf.data.Dataset:
        key = tf.stack([tf.constant(seed, tf.int64), pass_number])
        shards = tf.random.experimental.stateless_shuffle(names, key, alg="philox") if window > 1 else names
        out = tf.data.Dataset.from_tensor_slices(shards).interleave(
            lambda f: tf.data.TFRecordDataset(f, compression_type=COMPRESSION), cycle_length=min(len(files), 8),
            num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        if window <= 1:
            return out

        def permute(run: tf.Tensor, block: tf.Tensor) -> tf.Tensor:
            run_key = tf.random.experimental.stateless_fold_in(key, run)
            return tf.gather(block, tf.random.experimental.stateless_shuffle(
                tf.range(tf.shape(block)[0]), run_key, alg="philox"))

        return out.batch(window).enumerate().map(permute).unbatch()

    return records


def iterate_images(dataset_dir: str | os.PathLike, batch_size: int,
                   resolution: int | None = None) -> Iterator[tuple[list[str], np.ndarray]]:
    """(ids, uint8 NHWC) batches in dataset order, for ranking every real image once.

    At the dataset's own resolution the pixels equal load_srgb of the source files; at a
    smaller one they are made as training makes them.
    """
    dataset_dir = Path(dataset_dir)
    meta = read_meta(dataset_dir)
    decode = _decoder(meta, dataset_dir, resolution or meta["resolution"], True)
    records = tf.data.TFRecordDataset([str(dataset_dir / s["file"]) for s in meta["shards"]],
                                      compression_type=COMPRESSION)

    def to_uint8(record):
        image_id, image = decode(record)
        return image_id, tf.saturate_cast(tf.round(image), tf.uint8)

    batches = records.map(to_uint8, num_parallel_calls=tf.data.AUTOTUNE).batch(batch_size)
    for ids, images in batches.prefetch(tf.data.AUTOTUNE).as_numpy_iterator():
        yield [i.decode() for i in ids], images


# --- packing -------------------------------------------------------------------------------


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


def _fields(record: bytes) -> dict[str, bytes]:
    feature = tf.train.Example.FromString(record).features.feature
    return {k: feature[k].bytes_list.value[0] for k in _RECORD_FIELDS}


def _skip(row: dict, exc: ImageRejected) -> dict:
    log.warning("skipped %s: %s (%s)", row["path"], exc.reason, exc.detail)
    return {"image": row["image"], "path": row["path"], "reason": exc.reason, "detail": exc.detail}


# --- reading -------------------------------------------------------------------------------


def dct_ratio(native: int, resolution: int) -> int:
    """The largest libjpeg scale (1/2, 1/4, 1/8) that still yields at least `resolution`."""
    return next((k for k in (8, 4, 2) if native % k == 0 and native // k >= resolution), 1)


def _decoder(meta: dict, dataset_dir: Path, resolution: int, dct_downscale: bool) -> Callable:
    """record -> (id, float32 [resolution, resolution, 3] in [0, 255])."""
    native = meta["resolution"]
    if resolution > native:
        raise SetupError(f"{dataset_dir} holds {native}px images, too small for {resolution}px "
                         f"without upsampling; rebuild the images at {resolution}px or train at {native}px")
    ratio = dct_ratio(native, resolution) if dct_downscale else 1
    spec = {k: tf.io.FixedLenFeature([], tf.string) for k in ("image", "id", "format")}

    def fit(image: tf.Tensor, size: int) -> tf.Tensor:
        image.set_shape([size, size, 3])
        if size == resolution:
            return tf.cast(image, tf.float32)
        # area weights can overshoot 255 by float rounding; [-1, 1] must hold exactly
        return tf.clip_by_value(tf.image.resize(image, [resolution, resolution], method="area"), 0.0, 255.0)

    def decode(record: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        fields = tf.io.parse_single_example(record, spec)
        data = fields["image"]
        image = tf.cond(
            tf.equal(fields["format"], "jpg"),
            lambda: fit(tf.io.decode_jpeg(data, channels=3, ratio=ratio, dct_method=DCT_METHOD),
                        -(-native // ratio)),
            lambda: fit(tf.io.decode_png(data, channels=3), native))
        return fields["id"], image

    return decode
