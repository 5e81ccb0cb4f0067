"""The feature networks' loaders, on small stand-ins with the official files' names.

Inception: graphs with the official tensor names (ExpandDims in, pool_3 out): features
equal the same network run directly, the .tgz is read like the .pb, and a graph that would
run anything but a network's ops on the way to pool_3 is refused. VGG16: a Keras weights
file laid out as Keras's own (Keras loads it into its layers), with 2-4 channels: the
features equal Keras's layers run on it, and a file whose shapes do not chain as VGG16's,
or which declares more weight bytes than it holds, is refused before a weight is read."""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path

import h5py
import keras
import numpy as np
import pytest
import tensorflow as tf

from ganflow import feature_nets
from ganflow.runlog import SetupError

WEIGHTS = np.random.RandomState(0).randn(3, 3, 3, 4).astype(np.float32)


def stand_in(extra_op: bool = False) -> bytes:
    """A tiny graph shaped like the official one: resize, normalise, convolve, pool."""
    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, None, None, 3], name="ExpandDims")
        x = tf.compat.v1.image.resize_bilinear(x, [8, 8], name="ResizeBilinear")
        x = tf.multiply(tf.subtract(x, 128.0, name="Sub"), 1 / 128.0, name="Mul")
        x = tf.nn.relu(tf.nn.conv2d(x, tf.constant(WEIGHTS), 1, "SAME"), name="conv")
        if extra_op:  # a file write the features would depend on
            write = tf.io.write_file("/tmp/ganflow-should-not-exist", "x", name="sneaky")
            with tf.control_dependencies([write]):
                x = tf.identity(x)
        tf.nn.avg_pool2d(x, 8, 1, "VALID", name="pool_3")
    return graph.as_graph_def().SerializeToString()


def direct(images: np.ndarray) -> np.ndarray:
    x = tf.compat.v1.image.resize_bilinear(tf.constant(images, tf.float32), [8, 8])
    x = tf.nn.relu(tf.nn.conv2d((x - 128.0) / 128.0, WEIGHTS, 1, "SAME"))
    return np.asarray(tf.reduce_mean(x, axis=[1, 2]), np.float64)


def test_features_are_the_graphs_pool3(tmp_path: Path):
    pb = tmp_path / "classify_image_graph_def.pb"
    pb.write_bytes(stand_in())
    images = np.random.default_rng(1).uniform(0, 255, (5, 13, 11, 3))
    features = feature_nets.load_inception(pb)(images, batch=2)
    assert features.shape == (5, 4) and features.dtype == np.float64
    assert np.allclose(features, direct(images), atol=1e-5)
    # the archive as downloaded, read in place
    tgz = tmp_path / "inception-2015-12-05.tgz"
    with tarfile.open(tgz, "w:gz") as archive:
        info = tarfile.TarInfo(feature_nets.INCEPTION_MEMBER)
        info.size = pb.stat().st_size
        archive.addfile(info, io.BytesIO(pb.read_bytes()))
    pinned = hashlib.sha256(pb.read_bytes()).hexdigest()
    assert np.array_equal(feature_nets.load_inception(tgz, pinned)(images), features)
    with pytest.raises(SetupError, match="sha256 is"):
        feature_nets.load_inception(pb, "0" * 64)


def test_a_graph_over_its_size_is_refused_before_it_is_read(tmp_path: Path, monkeypatch):
    pb = tmp_path / "big.pb"
    pb.write_bytes(stand_in())
    monkeypatch.setattr(feature_nets, "MAX_GRAPH_BYTES", pb.stat().st_size - 1)
    with pytest.raises(SetupError, match="over the"):
        feature_nets.load_inception(pb)
    tgz = tmp_path / "big.tgz"
    with tarfile.open(tgz, "w:gz") as archive:
        info = tarfile.TarInfo(feature_nets.INCEPTION_MEMBER)
        info.size = pb.stat().st_size
        archive.addfile(info, io.BytesIO(pb.read_bytes()))
    with pytest.raises(SetupError, match="over the"):
        feature_nets.load_inception(tgz)


def test_a_graph_that_would_do_more_than_compute_is_refused(tmp_path: Path):
    bad = tmp_path / "bad.pb"
    bad.write_bytes(stand_in(extra_op=True))
    with pytest.raises(SetupError, match="op WriteFile .* lies between the images and pool_3"):
        feature_nets.load_inception(bad)
    assert not Path("/tmp/ganflow-should-not-exist").exists()
    junk = tmp_path / "junk.pb"
    junk.write_bytes(b"\x00not a graph")
    with pytest.raises(SetupError):
        feature_nets.load_inception(junk)
    other = tmp_path / "other.pb"
    graph = tf.Graph()
    with graph.as_default():
        tf.constant(1.0, name="pool_3")
    other.write_bytes(graph.as_graph_def().SerializeToString())
    with pytest.raises(SetupError, match="has no tensor ExpandDims"):
        feature_nets.load_inception(other)


def vgg16_layers(widths: tuple[int, ...] = (2, 3, 3, 4, 4), dense: tuple[int, int] = (6, 5)) -> list:
    """Keras's VGG16 with its top (names, order, activations), each block `widths[b]` wide."""
    layers = [keras.Input((feature_nets.VGG16_SIZE, feature_nets.VGG16_SIZE, 3))]
    for b, (count, width) in enumerate(zip(feature_nets.VGG16_BLOCKS, widths), 1):
        layers += [keras.layers.Conv2D(width, 3, padding="same", activation="relu", name=f"block{b}_conv{i}")
                   for i in range(1, count + 1)]
        layers.append(keras.layers.MaxPooling2D(2, name=f"block{b}_pool"))
    layers.append(keras.layers.Flatten(name="flatten"))
    layers += [keras.layers.Dense(n, activation="relu", name=f"fc{i}") for i, n in enumerate(dense, 1)]
    return layers


def vgg16_stand_in(path: Path, seed: int = 0, **shape) -> keras.Model:
    """Write a narrow VGG16 in the layout of Keras's vgg16_weights_tf_dim_ordering_tf_kernels.h5
    (root attribute layer_names, each layer's weight_names, Keras 1's W/b names) and return
    the Keras model it belongs to, its weights loaded by Keras itself from that file."""
    model = keras.Sequential(vgg16_layers(**shape))
    rng = np.random.default_rng(seed)
    with h5py.File(path, "w") as fh:
        fh.attrs["layer_names"] = [layer.name.encode() for layer in model.layers]
        for layer in model.layers:
            group = fh.create_group(layer.name)
            names = [f"{layer.name}_{k}_1:0".encode() for k in ("W", "b")[:len(layer.weights)]]
            group.attrs["weight_names"] = names
            for name, w in zip(names, layer.weights):
                group[name.decode()] = rng.normal(0, 0.3, w.shape).astype(np.float32)
    model.load_weights(str(path))
    return model


def test_vgg16_features_are_kerass_fc2(tmp_path: Path):
    h5 = tmp_path / "vgg16_weights_tf_dim_ordering_tf_kernels.h5"
    model = vgg16_stand_in(h5)
    images = np.random.default_rng(1).uniform(0, 255, (3, 40, 24, 3))
    features = feature_nets.load_vgg16(h5)(images, batch=2)
    resized = tf.image.resize(images.astype(np.float32), [224, 224], antialias=True)
    direct = model(resized[..., ::-1] - np.array(feature_nets.VGG16_MEAN_BGR, np.float32))
    assert features.shape == (3, 5) and features.dtype == np.float64 and features.std() > 0
    assert np.allclose(features, np.asarray(direct), rtol=1e-4, atol=1e-4)
    pinned = hashlib.sha256(h5.read_bytes()).hexdigest()
    # (a second load may order oneDNN's sums differently: equal to float32 rounding)
    np.testing.assert_allclose(feature_nets.load_vgg16(h5, pinned)(images), features, rtol=1e-5, atol=1e-6)
    with pytest.raises(SetupError, match="sha256 is"):
        feature_nets.load_vgg16(h5, "0" * 64)


def test_a_vgg16_file_that_is_not_vgg16_is_refused_before_it_is_read(tmp_path: Path):
    inception = tmp_path / "inception.pb"
    inception.write_bytes(stand_in())
    with pytest.raises(SetupError, match="cannot read the VGG16 weights"):
        feature_nets.load_vgg16(inception)
    notop = tmp_path / "notop.h5"
    vgg16_stand_in(notop)
    with h5py.File(notop, "a") as fh:
        del fh["fc2"]
    with pytest.raises(SetupError, match="no kernel and bias for layer fc2"):
        feature_nets.load_vgg16(notop)
    wrong = tmp_path / "wrong.h5"
    vgg16_stand_in(wrong)
    with h5py.File(wrong, "a") as fh:  # fc1 as if the last block were 5 wide
        del fh["fc1/fc1_W_1:0"]
        fh["fc1/fc1_W_1:0"] = np.zeros((7 * 7 * 5, 6), np.float32)
    with pytest.raises(SetupError, match=r"layer fc1 has kernel \(245, 6\) .* kernel of \(196, 'N'\)"):
        feature_nets.load_vgg16(wrong)
    inflated = tmp_path / "inflated.h5"
    vgg16_stand_in(inflated)
    with h5py.File(inflated, "a") as fh:  # 47 MB of fc1 and fc2 weights, stored as compressed zeros
        for name, shape in (("fc1/fc1_W_1:0", (196, 60000)), ("fc1/fc1_b_1:0", (60000,)),
                            ("fc2/fc2_W_1:0", (60000, 5))):
            del fh[name]
            fh.create_dataset(name, data=np.zeros(shape, np.float32), compression="gzip")
    assert inflated.stat().st_size < 4 * 196 * 60000
    with pytest.raises(SetupError, match="declares .* bytes of weights in a .*-byte file"):
        feature_nets.load_vgg16(inflated)
