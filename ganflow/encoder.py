"""An encoder that guesses where an image lies in W+, so a projection can start near the
answer instead of at the mean w.

A small ResNet E (image -> one w per layer) is trained on the generator's own samples:
draw w (with style mixing, so per-layer guesses are learned), render G(w) with random
noise, and regress E(G(w)) onto w, in units of W's per-dimension spread. No dataset is
needed, and the encoder knows exactly the generator it serves. Its guess is rough
(the generator's images are all it has seen); the projector's optimisation does the rest.
"""

from __future__ import annotations

import logging
import os
from dataclasses import asdict, dataclass

import keras
import numpy as np
import tensorflow as tf

from . import networks
from .config import defaults
from .convnets import Encoder, encoder_net, save_encoder
from .runlog import SetupError, progress
from .weights import load_export

log = logging.getLogger(__name__)

HELDOUT = 256       # fresh samples the trained encoder is scored on
HELDOUT_SEED = 987654


_DEFAULTS = defaults("project.encoder")  # config/schema.yaml's project.encoder: section


@dataclass(frozen=True)
class EncoderSettings:
    steps: int = _DEFAULTS["steps"]
    batch: int = _DEFAULTS["batch"]
    channels: int = _DEFAULTS["channels"]       # of the first level; doubled per halving, up to 8x
    lr: float = _DEFAULTS["lr"]
    mixing: float = _DEFAULTS["mixing"]      # share of training samples with two w's (a per-layer target)
    seed: int = _DEFAULTS["seed"]

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch < 1 or self.channels < 1 or self.lr <= 0 or not 0 <= self.mixing <= 1:
            raise SetupError(f"encoder settings {asdict(self)} are out of range: steps, batch and channels "
                             "must be >= 1, lr > 0, mixing in [0, 1]")


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
    net = encoder_net(G.resolution, G.num_ws, G.w_dim, s.channels, s.seed)
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


def make_encoder(export_dir: str | os.PathLike, out_npz: str | os.PathLike, settings: dict) -> Encoder:
    """The project_encoder rule: an encoder for the final generator."""
    G, _, _ = load_export(export_dir)
    E = train(G, EncoderSettings(**settings))
    save_encoder(E, out_npz)
    return E
