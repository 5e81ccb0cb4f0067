"""The two small Keras conv nets the workflow trains besides the GAN, and their files:
the tagger (image -> tag probabilities, tagger.py trains it) and the encoder (image ->
a first guess of w for projection, encoder.py trains it). Stages that only use them
(edits, projection, the explorer) load them from here.

Each is saved as one npz (tables.save_npz: the same weights give the same bytes) holding
its weights in layer order and an `info` JSON with the settings it was built from, so
loading rebuilds the same layers and refuses a file made for something else.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Iterator, Sequence

import keras
import numpy as np
import tensorflow as tf

from . import networks
from .runlog import SetupError
from .tables import load_npz, save_npz


def _lrelu(x):
    # max(x, 0.2x) rather than a LeakyReLU layer: grappler's fusion of LeakyRelu fails
    # (an error in the log) on these graphs, as in networks.py.
    return keras.layers.Lambda(lambda t: keras.ops.maximum(t, 0.2 * t))(x)


def _seeds(seed: int) -> Iterator[int]:
    """One initialiser seed per layer: the same settings build the same network."""
    return iter(range(seed * 1000, seed * 1000 + 1000))


def tagger_net(resolution: int, n_tags: int, channels: int, seed: int = 0) -> keras.Model:
    """Conv pairs that halve the resolution down to 4x4, global average pooling, one dense
    layer of logits. Small on purpose: a few hundred images train it."""
    init = _seeds(seed)

    def conv(x, ch, stride=1):
        return _lrelu(keras.layers.Conv2D(
            ch, 3, stride, "same", kernel_initializer=keras.initializers.HeNormal(next(init)))(x))

    image = keras.Input((resolution, resolution, 3))
    x, ch = conv(image, channels), channels
    while x.shape[1] > 4:
        x = conv(conv(x, ch), min(ch * 2, channels * 4), stride=2)
        ch = min(ch * 2, channels * 4)
    x = keras.layers.GlobalAveragePooling2D()(x)
    logits = keras.layers.Dense(n_tags, kernel_initializer=keras.initializers.GlorotUniform(next(init)))(x)
    return keras.Model(image, logits)


def encoder_net(resolution: int, num_ws: int, w_dim: int, channels: int, seed: int = 0) -> keras.Model:
    """Residual blocks that halve the resolution down to 4x4, then one dense layer to
    num_ws * w_dim."""
    init = _seeds(seed)

    def conv(x, ch, k=3, stride=1):
        return keras.layers.Conv2D(ch, k, stride, "same", kernel_initializer=keras.initializers.HeNormal(next(init)))(x)

    image = keras.Input((resolution, resolution, 3))
    x = _lrelu(conv(image, channels))
    ch = channels
    while x.shape[1] > 4:
        out = min(ch * 2, channels * 8)
        skip = conv(keras.layers.AveragePooling2D(2)(x), out, 1)
        y = _lrelu(conv(x, ch))
        y = _lrelu(conv(y, out, stride=2))
        x = keras.layers.Rescaling(1 / math.sqrt(2))(keras.layers.Add()([skip, y]))
        ch = out
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(num_ws * w_dim, kernel_initializer=keras.initializers.GlorotUniform(next(init)))(x)
    return keras.Model(image, keras.layers.Reshape((num_ws, w_dim))(x))


class Tagger:
    """The network, its tags in output order, and what training measured."""

    def __init__(self, net: keras.Model, tags: Sequence[str], info: dict) -> None:
        self.net, self.tags, self.info = net, list(tags), info

    def __call__(self, images: tf.Tensor) -> tf.Tensor:
        """Probabilities [N, tags] for float images in [-1, 1]."""
        return tf.sigmoid(self.net(images))

    def scores(self, pixels: np.ndarray, batch: int = 64) -> np.ndarray:
        """Probabilities [N, tags] for uint8 images."""
        out = [np.asarray(self(tf.constant(pixels[i:i + batch].astype(np.float32) / 127.5 - 1.0)))
               for i in range(0, len(pixels), batch)]
        return np.concatenate(out) if out else np.zeros((0, len(self.tags)), np.float32)


class Encoder:
    """E plus the statistics of W that its outputs are scaled by."""

    def __init__(self, net: keras.Model, w_mean: np.ndarray, w_sd: np.ndarray, info: dict) -> None:
        self.net, self.w_mean, self.w_sd, self.info = net, w_mean.astype(np.float32), w_sd.astype(np.float32), info

    def __call__(self, images: tf.Tensor) -> tf.Tensor:
        """ws [N, num_ws, w_dim] for images [N, res, res, 3] in [-1, 1]."""
        return self.w_mean + self.w_sd * self.net(images)

    def guess(self, target: np.ndarray) -> np.ndarray:
        """ws [num_ws, w_dim] for one uint8 image."""
        return np.asarray(self(tf.constant(target[None].astype(np.float32) / 127.5 - 1.0)))[0]


def _save(net: keras.Model, path: str | os.PathLike, info: dict, **arrays: np.ndarray) -> Path:
    weights = {f"weight_{i:03d}": np.asarray(w) for i, w in enumerate(net.weights)}
    return save_npz(path, {**weights, **arrays, "info": np.array(json.dumps(info, sort_keys=True))})


def _set_weights(net: keras.Model, data: dict[str, np.ndarray]) -> keras.Model:
    net.set_weights([data[f"weight_{i:03d}"] for i in range(len(net.weights))])
    return net


def save_tagger(T: Tagger, path: str | os.PathLike) -> Path:
    return _save(T.net, path, T.info, tags=np.array(T.tags))


def load_tagger(path: str | os.PathLike) -> Tagger:
    """The tagger saved at `path`, rebuilt from its settings."""
    data = load_npz(path, "tagger")
    if "info" not in data or "tags" not in data:
        raise SetupError(f"{path} is not a ganflow tagger; rebuild it with the edit_tagger rule")
    info, tags = json.loads(str(data["info"])), [str(t) for t in data["tags"]]
    net = tagger_net(info["resolution"], len(tags), info["settings"]["channels"], info["settings"]["seed"])
    return Tagger(_set_weights(net, data), tags, info)


def save_encoder(E: Encoder, path: str | os.PathLike) -> Path:
    return _save(E.net, path, E.info, w_mean=E.w_mean, w_sd=E.w_sd)


def load_encoder(path: str | os.PathLike, G: networks.Generator) -> Encoder:
    """The encoder saved at `path`, which must have been trained for a generator like G."""
    data = load_npz(path, "encoder")
    if "info" not in data:
        raise SetupError(f"{path} is not a ganflow encoder (no info); rebuild it with the project_encoder rule")
    info = json.loads(str(data["info"]))
    if (info["resolution"], info["num_ws"], info["w_dim"]) != (G.resolution, G.num_ws, G.w_dim):
        raise SetupError(f"encoder {path} was trained for a {info['resolution']}px generator with w_dim "
                         f"{info['w_dim']}; train one for this run")
    net = encoder_net(G.resolution, G.num_ws, G.w_dim, info["settings"]["channels"], info["settings"]["seed"])
    return Encoder(_set_weights(net, data), data["w_mean"], data["w_sd"], info)
