"""The feature networks of the metrics, read from local files (no package ships them;
the README names where to get them).

FID and KID: Inception-v3's pool3 features from the TensorFlow graph of 2015-12-05
(classify_image_graph_def.pb, in inception-2015-12-05.tgz), the network every published
FID was computed with, read from the .pb or from the .tgz as downloaded.

Images go in as float RGB in [0, 255] at any size, in place of the graph's `ExpandDims`
(where its own JPEG decoding ends): the graph then resizes them to 299x299 (its own
bilinear resize) and normalises them itself, so the features equal those of the official
code. A GraphDef is data, not code, but executing one could read or write files: only the
ops between that input and `pool_3` run, and each must be one of the network's own kinds
(a file holding anything else there is refused, one sentence naming the op).

Precision and recall: VGG16's fc2 features (4096, after its ReLU), the layer Kynkaanniemi
et al. measure in. The weights are Keras's ImageNet VGG16 with its top
(vgg16_weights_tf_dim_ordering_tf_kernels.h5, converted from the original Caffe model),
read as arrays with h5py and run by load_vgg16's own loop, so the file's shapes define the
network: 13 3x3 convolutions in blocks of 2, 2, 3, 3, 3 and two dense layers, checked
before a byte of a weight is read. Images are resized to 224x224 (antialiased bilinear)
and normalised as the weights were trained (BGR, ImageNet mean). NVIDIA's vgg16.pt, which
stylegan2-ada-pytorch downloads, holds VGG16 too, but its file was not reachable here to
compare features with: precision and recall agree with published numbers only as far as
the two conversions of VGG16 agree (README Metrics).
"""

from __future__ import annotations

import hashlib
import os
import tarfile
from pathlib import Path
from typing import Callable

import h5py
import numpy as np
import tensorflow as tf

from .runlog import SetupError

INCEPTION_URL = "http://download.tensorflow.org/models/image/imagenet/inception-2015-12-05.tgz"
INCEPTION_MEMBER = "classify_image_graph_def.pb"
INCEPTION_INPUT, INCEPTION_OUTPUT = "ExpandDims", "pool_3"
INCEPTION_FEATURES = 2048
VGG16_URL = ("https://storage.googleapis.com/tensorflow/keras-applications/vgg16/"
             "vgg16_weights_tf_dim_ordering_tf_kernels.h5")
VGG16_BLOCKS = (2, 2, 3, 3, 3)  # 3x3 convolutions per block, each block ending in a 2x2 max pool
VGG16_SIZE = 224  # fc1 reads the 7x7 map that 224 px leave after five pools
VGG16_MEAN_BGR = (103.939, 116.779, 123.68)
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

    return _batched(tf.compat.v1.wrap_function(imported, [tf.TensorSpec([None, None, None, 3], tf.float32)]))


def _batched(network: Callable[[tf.Tensor], tf.Tensor]) -> Callable[[np.ndarray], np.ndarray]:
    """A network on float32 batches -> a function of any number of images giving float64
    feature rows."""
    def features(images: np.ndarray, batch: int = 64) -> np.ndarray:
        out = [np.asarray(network(tf.constant(np.asarray(images[i:i + batch], np.float32))))
               for i in range(0, len(images), batch)]
        return np.concatenate(out).reshape(len(images), -1).astype(np.float64)

    return features


def _vgg16_layer_names() -> list[str]:
    convs = [f"block{b}_conv{i}" for b, n in enumerate(VGG16_BLOCKS, 1) for i in range(1, n + 1)]
    return convs + ["fc1", "fc2"]


def _vgg16_arrays(path: Path) -> list[tuple[np.ndarray, np.ndarray]]:
    """(kernel, bias) of each conv and of fc1, fc2, from a Keras weights file; the shapes
    are checked to chain as VGG16's and the declared bytes against the file's size first."""
    try:
        fh = h5py.File(path, "r")
    except OSError as exc:
        raise SetupError(f"cannot read the VGG16 weights {path} ({exc}); give Keras's "
                         f"{VGG16_URL.rsplit('/', 1)[1]}, see README Metrics") from None
    with fh:
        root = fh["model_weights"] if "model_weights" in fh else fh
        datasets = []
        for name in _vgg16_layer_names():
            group = root.get(name)
            found = [group[w] for w in group.attrs.get("weight_names", [])] if isinstance(group, h5py.Group) else []
            if len(found) != 2 or not all(isinstance(d, h5py.Dataset) for d in found):
                raise SetupError(f"{path} has no kernel and bias for layer {name}: it is not Keras's VGG16 with its "
                                 f"top ({VGG16_URL.rsplit('/', 1)[1]})")
            datasets.append(found)
        shapes = [(k.shape, b.shape) for k, b in datasets]
        channels = 3
        for name, (kernel, bias) in zip(_vgg16_layer_names(), shapes):
            fan_in = channels * (VGG16_SIZE // 32) ** 2 if name == "fc1" else channels
            want = (3, 3, fan_in) if name.startswith("block") else (fan_in,)
            if kernel[:-1] != want or bias != kernel[-1:]:
                raise SetupError(f"{path}: layer {name} has kernel {kernel} and bias {bias} where VGG16 needs a "
                                 f"kernel of {want + ('N',)} and N biases")
            channels = kernel[-1]
        declared = sum(d.size * d.dtype.itemsize for pair in datasets for d in pair)
        if declared > path.stat().st_size or any(d.dtype != np.float32 for pair in datasets for d in pair):
            raise SetupError(f"{path} declares {declared} bytes of weights in a {path.stat().st_size}-byte file, or "
                             "weights other than float32: it is damaged, get it again")
        return [(k[()], b[()]) for k, b in datasets]


def load_vgg16(path: str | os.PathLike, sha256: str | None = None) -> Callable[[np.ndarray], np.ndarray]:
    """images [N, H, W, 3] in [0, 255] -> float64 fc2 features [N, 4096], from Keras's
    VGG16 weights at `path` (its sha256 checked when given)."""
    path = Path(path)
    if sha256:
        with open(path, "rb") as fh:
            actual = hashlib.file_digest(fh, "sha256").hexdigest()
        if actual != sha256:
            raise SetupError(f"{path}: the VGG16 weights' sha256 is {actual}, not the pinned {sha256}; get the "
                             "file again")
    layers = [(tf.constant(k), tf.constant(b)) for k, b in _vgg16_arrays(path)]
    mean = tf.constant(VGG16_MEAN_BGR, tf.float32)

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)], autograph=False)
    def network(images: tf.Tensor) -> tf.Tensor:  # (Python loops over the layers: nothing for AutoGraph)
        x = tf.image.resize(images, [VGG16_SIZE, VGG16_SIZE], antialias=True)[..., ::-1] - mean
        convs = iter(layers)
        for count in VGG16_BLOCKS:
            for _ in range(count):
                kernel, bias = next(convs)
                x = tf.nn.relu(tf.nn.conv2d(x, kernel, 1, "SAME") + bias)
            x = tf.nn.max_pool2d(x, 2, 2, "VALID")
        x = tf.reshape(x, [tf.shape(x)[0], -1])
        for kernel, bias in layers[-2:]:
            x = tf.nn.relu(x @ kernel + bias)
        return x

    return _batched(network)
