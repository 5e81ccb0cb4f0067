"""An encoder that guesses where an image lies in W+, so a projection can start near the
answer instead of at the mean w.

A small ResNet E (image -> one w per layer) is trained on the generator's own samples:
draw w (with style mixing, so per-layer guesses are learned), render G(w) with random
noise, and regress E(G(w)) onto w, in units of W's per-dimension spread. No dataset is
needed, and the encoder knows exactly the generator it serves. Its guess is rough
(the generator's images are all it has seen); the projector's optimisation does the rest.
"""

from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from . import networks
from .project import load_npz, save_npz
from .runlog import SetupError, progress
from .weights import load_export

log = logging.getLogger(__name__)

HELDOUT = 256       # fresh samples the trained encoder is scored on
HELDOUT_SEED = 987654


@dataclass(frozen=True)
class EncoderSettings:
    steps: int = 2000
    batch: int = 16
    channels: int = 32       # of the first level; doubled per halving, up to 8x
    lr: float = 1e-3
    mixing: float = 0.5      # share of training samples with two w's (a per-layer target)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch < 1 or self.channels < 1 or self.lr <= 0 or not 0 <= self.mixing <= 1:
            raise SetupError(f"encoder settings {asdict(self)} are out of range: steps, batch and channels "
                             "must be >= 1, lr > 0, mixing in [0, 1]")


def _lrelu(x):
    # max(x, 0.2x) rather than a LeakyReLU layer: grappler's fusion of LeakyRelu fails
    # (an error in the log) on these graphs, as in networks.py.
    return keras.layers.Lambda(lambda t: keras.ops.maximum(t, 0.2 * t))(x)


def build(resolution: int, num_ws: int, w_dim: int, channels: int, seed: int = 0) -> keras.Model:
    """Residual blocks that halve the resolution down to 4x4, then one dense layer to
    num_ws * w_dim. Seeded initialisers: the same settings give the same network."""
    init = iter(range(seed * 1000, seed * 1000 + 1000))

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


def _sample_ws(G: networks.Generator, rng: tf.random.Generator, n: int, mixing: float) -> tf.Tensor:
    """ws of n fresh z; with probability `mixing` the layers from a random cutoff on take a
    second z's w, as in style-mixing training."""
    ws = G.mapping(rng.normal([n, G.z_dim]))
    other = G.mapping(rng.normal([n, G.z_dim]))
    cutoff = tf.where(rng.uniform([n]) < mixing, rng.uniform([n], 1, G.num_ws, tf.int32), G.num_ws)
    take = tf.range(G.num_ws)[None, :, None] >= cutoff[:, None, None]
    return tf.where(take, other, ws)


def _render(G: networks.Generator, rng: tf.random.Generator, ws: tf.Tensor) -> tf.Tensor:
    noise = [rng.normal([ws.shape[0], *s]) for s in G.synthesis.noise_shapes]
    return G.synthesis(ws, noise=noise)


def w_moments(G: networks.Generator, samples: int = 10000, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Per-dimension mean and standard deviation of w over fresh z."""
    rng = tf.random.Generator.from_seed(seed)
    w = np.concatenate([np.asarray(G.mapping(rng.normal([1000, G.z_dim])))[:, 0] for _ in range(samples // 1000)])
    return w.mean(0), w.std(0) + 1e-8


def heldout_error(G: networks.Generator, E: Encoder, n: int = HELDOUT) -> float:
    """Mean squared error of E(G(w)) over that of always guessing the mean w, on samples
    never trained on: under 1 means the encoder helps."""
    rng = tf.random.Generator.from_seed(HELDOUT_SEED)
    err = base = 0.0
    for i in range(0, n, 32):
        ws = _sample_ws(G, rng, min(32, n - i), 0.0)
        guess = E(_render(G, rng, ws))
        err += float(tf.reduce_sum(tf.square(guess - ws)))
        base += float(tf.reduce_sum(tf.square(E.w_mean - ws)))
    return err / base


def train(G: networks.Generator, settings: EncoderSettings = EncoderSettings()) -> Encoder:
    """Train an encoder for G on G's own samples."""
    s = settings
    w_mean, w_sd = w_moments(G)
    net = build(G.resolution, G.num_ws, G.w_dim, s.channels, s.seed)
    mean, sd = tf.constant(w_mean, tf.float32), tf.constant(w_sd, tf.float32)
    opt = keras.optimizers.Adam(s.lr)
    rng = tf.random.Generator.from_seed(s.seed)

    @tf.function
    def step() -> tf.Tensor:
        ws = _sample_ws(G, rng, s.batch, s.mixing)
        images = _render(G, rng, ws)
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(net(images) - (ws - mean) / sd))
        opt.apply_gradients(zip(tape.gradient(loss, net.trainable_weights), net.trainable_weights))
        return loss

    bar = progress(range(s.steps), desc="encoder", unit="step")
    losses = [float(step()) for _ in bar]
    info = {"settings": asdict(s), "resolution": G.resolution, "num_ws": G.num_ws, "w_dim": G.w_dim,
            "final_loss": float(np.mean(losses[-50:]))}
    E = Encoder(net, w_mean, w_sd, info)
    E.info["heldout_error"] = heldout_error(G, E)
    log.info("encoder: %d steps, loss %.4f -> %.4f; on fresh samples its w error is %.3f of the mean w's",
             s.steps, losses[0], E.info["final_loss"], E.info["heldout_error"])
    return E


def save(E: Encoder, path: str | os.PathLike) -> Path:
    """One npz: the weights in layer order, W's statistics and the settings as JSON."""
    arrays = {f"weight_{i:03d}": np.asarray(w) for i, w in enumerate(E.net.weights)}
    return save_npz(path, {**arrays, "w_mean": E.w_mean, "w_sd": E.w_sd,
                           "info": np.array(json.dumps(E.info, sort_keys=True))})


def load(path: str | os.PathLike, G: networks.Generator) -> Encoder:
    """The encoder saved at `path`, which must have been trained for a generator like G."""
    data = load_npz(path, "encoder")
    if "info" not in data:
        raise SetupError(f"{path} is not a ganflow encoder (no info); rebuild it with the project_encoder rule")
    info = json.loads(str(data["info"]))
    if (info["resolution"], info["num_ws"], info["w_dim"]) != (G.resolution, G.num_ws, G.w_dim):
        raise SetupError(f"encoder {path} was trained for a {info['resolution']}px generator with w_dim "
                         f"{info['w_dim']}; train one for this run")
    net = build(G.resolution, G.num_ws, G.w_dim, info["settings"]["channels"], info["settings"]["seed"])
    weights = [data[f"weight_{i:03d}"] for i in range(len(net.weights))]
    net.set_weights(weights)
    return Encoder(net, data["w_mean"], data["w_sd"], info)


def make_encoder(export_dir: str | os.PathLike, out_npz: str | os.PathLike, settings: dict) -> Encoder:
    """The project_encoder rule: an encoder for the final generator."""
    G, _, _ = load_export(export_dir)
    E = train(G, EncoderSettings(**settings))
    save(E, out_npz)
    return E
