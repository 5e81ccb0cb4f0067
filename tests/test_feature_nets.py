"""The Inception graph loader, on small stand-in graphs with the official graph's tensor
names (ExpandDims in, pool_3 out): features equal the same network run directly, the
.tgz is read like the .pb, and a graph that would run anything but a network's ops on
the way to pool_3 is refused."""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path

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
