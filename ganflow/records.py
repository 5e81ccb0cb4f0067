"""Reading a packed dataset: its record format, its checks, and the image streams that
feed training (a reproducible, resumable order) and ranking (every image once).

dataset.py writes what this module reads: a directory of GZIP-framed TFRecord shards,
trusted only through the dataset.json written last. A record holds an image file's bytes
as they were packed; smaller training resolutions are made here while reading, with
JPEG's DCT-domain downscale where the ratio allows.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import tensorflow as tf

from .imaging import sha256_file
from .runlog import SetupError
META = "dataset.json"
COMPRESSION = "GZIP"
# libjpeg's accurate integer IDCT: the one PIL uses, so reading is bit-exact with load_srgb.
# TensorFlow's default (IFAST) differs from it by up to ~6 levels.
DCT_METHOD = "INTEGER_ACCURATE"
# A record is a tf.train.Example of bytes features: image (the file's bytes), id (image id),
# source_id, source (source file path), box ("x,y,w,h" in the source, as in the manifest),
# format (jpg | png) and sha256 (the 32-byte digest of image).
_RECORD_FIELDS = ["image", "id", "source_id", "source", "box", "format", "sha256"]


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


def _fields(record: bytes) -> dict[str, bytes]:
    feature = tf.train.Example.FromString(record).features.feature
    return {k: feature[k].bytes_list.value[0] for k in _RECORD_FIELDS}


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


def dataset_fingerprint(dataset_dir: str | os.PathLike) -> str:
    """sha256 of dataset.json: it lists every shard's hash, so equal means equal data."""
    path = Path(dataset_dir) / META
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as e:
        raise SetupError(f"cannot read {path} ({e.strerror}); build the dataset first") from e
