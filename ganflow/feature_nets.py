"""The feature network of FID and KID: Inception-v3's pool3 features from the TensorFlow
graph of 2015-12-05 (classify_image_graph_def.pb, in inception-2015-12-05.tgz), the
network every published FID was computed with. No package ships it, so it is read from a
local file: the .pb, or the .tgz as downloaded (the README names where to get it).

Images go in as float RGB in [0, 255] at any size, in place of the graph's `ExpandDims`
(where its own JPEG decoding ends): the graph then resizes them to 299x299 (its own
bilinear resize) and normalises them itself, so the features equal those of the official
code. A GraphDef is data, not code, but executing one could read or write files: only the
ops between that input and `pool_3` run, and each must be one of the network's own kinds
(a file holding anything else there is refused, one sentence naming the op).
"""

from __future__ import annotations

import hashlib
import os
import tarfile
from pathlib import Path
from typing import Callable

import numpy as np
import tensorflow as tf

from .runlog import SetupError

INCEPTION_URL = "http://download.tensorflow.org/models/image/imagenet/inception-2015-12-05.tgz"
INCEPTION_MEMBER = "classify_image_graph_def.pb"
INCEPTION_INPUT, INCEPTION_OUTPUT = "ExpandDims", "pool_3"
INCEPTION_FEATURES = 2048
MAX_GRAPH_BYTES = 512 << 20  # the official graph is 95 MB: a larger file is refused before it is read
# The op kinds that may lie between the input and pool_3: a convolutional network's.
NETWORK_OPS = frozenset({
    "AvgPool", "BatchNormWithGlobalNormalization", "BiasAdd", "Concat", "ConcatV2", "Const", "Conv2D",
    "FusedBatchNorm", "FusedBatchNormV3", "Identity", "MaxPool", "Mul", "Relu", "ResizeBilinear", "Reshape",
    "Sub", "Add", "AddV2",
})


def _checked_size(size: int, path: Path) -> None:
    if size > MAX_GRAPH_BYTES:
        raise SetupError(f"{path}: the graph would be {size} bytes, over the {MAX_GRAPH_BYTES} an Inception graph "
                         "needs (95 MB); give inception-2015-12-05.tgz or the .pb in it")


def _graph_bytes(path: Path) -> bytes:
    """The .pb's bytes, read from the .tgz without unpacking it when given the archive; the
    size, as the file system or the archive states it, checked before anything is read."""
    if tarfile.is_tarfile(path):
        with tarfile.open(path) as archive:
            member = next((m for m in archive.getmembers() if Path(m.name).name == INCEPTION_MEMBER and m.isfile()),
                          None)
            if member is None:
                raise SetupError(f"{path} holds no {INCEPTION_MEMBER}; give inception-2015-12-05.tgz or the .pb in it")
            _checked_size(member.size, path)
            return archive.extractfile(member).read(MAX_GRAPH_BYTES + 1)
    _checked_size(path.stat().st_size, path)
    with open(path, "rb") as fh:
        return fh.read(MAX_GRAPH_BYTES + 1)


def _path_ops(graph_def: tf.compat.v1.GraphDef, path: Path) -> None:
    """Refuse a graph without the two tensors, or with an op outside NETWORK_OPS on the way."""
    nodes = {n.name: n for n in graph_def.node}
    for name in (INCEPTION_INPUT, INCEPTION_OUTPUT):
        if name not in nodes:
            raise SetupError(f"{path} has no tensor {name}: it is not the Inception graph of 2015-12-05")
    todo, seen = [INCEPTION_OUTPUT], {INCEPTION_INPUT}
    while todo:
        node = nodes[todo.pop()]
        if node.op not in NETWORK_OPS:
            raise SetupError(f"{path}: op {node.op} ({node.name}) lies between the images and pool_3, where only a "
                             "network's ops belong; it is not the Inception graph, get the file again")
        for source in node.input:
            name = source.lstrip("^").split(":")[0]
            if name not in seen:
                seen.add(name)
                todo.append(name)


def load_inception(path: str | os.PathLike, sha256: str | None = None) -> Callable[[np.ndarray], np.ndarray]:
    """images [N, H, W, 3] in [0, 255] -> float64 pool3 features [N, 2048], from the graph at
    `path` (the .pb or the .tgz; its sha256 checked when given)."""
    path = Path(path)
    try:
        data = _graph_bytes(path)
    except (OSError, tarfile.TarError) as exc:
        raise SetupError(f"cannot read the Inception graph {path} ({exc}); see README Metrics") from None
    if sha256 and hashlib.sha256(data).hexdigest() != sha256:
        raise SetupError(f"{path}: the graph's sha256 is {hashlib.sha256(data).hexdigest()}, not the pinned "
                         f"{sha256}; get the file again")
    graph_def = tf.compat.v1.GraphDef()
    try:
        graph_def.ParseFromString(data)
    except Exception as exc:  # noqa: BLE001 - protobuf's DecodeError, whatever the backend
        raise SetupError(f"{path} is not a TensorFlow graph ({exc}); give inception-2015-12-05.tgz") from None
    _path_ops(graph_def, path)

    def imported(images: tf.Tensor) -> tf.Tensor:
        return tf.graph_util.import_graph_def(graph_def, input_map={f"{INCEPTION_INPUT}:0": images},
                                              return_elements=[f"{INCEPTION_OUTPUT}:0"], name="inception")[0]

    network = tf.compat.v1.wrap_function(imported, [tf.TensorSpec([None, None, None, 3], tf.float32)])

    def features(images: np.ndarray, batch: int = 64) -> np.ndarray:
        out = [np.asarray(network(tf.constant(np.asarray(images[i:i + batch], np.float32))))
               for i in range(0, len(images), batch)]
        return np.concatenate(out).reshape(len(images), -1).astype(np.float64)

    return features
