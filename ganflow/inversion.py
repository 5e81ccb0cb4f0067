"""Real images into a trained generator's latent space (projection), written from the
StyleGAN2 paper's recipe (section 5 and appendix): start at the mean w, optimise w and
the per-layer noise images with Adam to minimise a perceptual distance to the target,
with a cosine learning-rate ramp, Gaussian noise added to w that fades over the first
three quarters (it keeps the search from settling in the first nearby minimum), and a
penalty on spatially correlated noise at several scales (otherwise the noise images
learn to paint the target and w explains nothing). The noise images are renormalised
to zero mean and unit variance after every step, as the generator saw during training.

Mode 'w' optimises one w for every layer (edits made on it behave like those of
generated images); 'w+' one w per layer (closer reconstructions, less editable).

The perceptual distance compares unit-normalised feature maps (LPIPS without the learned
per-channel weights): 'vgg16' on Keras's ImageNet VGG16 (the paper's choice; its weights
are a download), 'discriminator' on the run's own discriminator (nothing to download, and
it has seen exactly this kind of image). Everything is seeded, so a rerun repeats the
same optimisation.
"""

from __future__ import annotations

import hashlib
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import tensorflow as tf

from . import networks
from .config import defaults
from .imaging import ImageRejected, fit_square, load_srgb, sha256_file, to_array
from .latents import w_samples
from .runlog import SetupError, progress
from .tables import download

MODES = ("w", "w+")
DISTANCES = ("vgg16", "discriminator")
VGG16_URL = ("https://storage.googleapis.com/tensorflow/keras-applications/vgg16/"
             "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5")
# Keras publishes only an md5 for this file (keras.applications.vgg16); it is checked after
# the download and before every use, and a sha256 too when the config pins one.
VGG16_MD5 = "6d6bbae143d832006294945121d1f1fc"
# The last conv of each VGG16 block: LPIPS's five feature scales.
VGG16_LAYERS = ("block1_conv2", "block2_conv2", "block3_conv3", "block4_conv3", "block5_conv3")
# VGG16 was trained on BGR 0-255 images minus the ImageNet mean (caffe preprocessing).
VGG16_MEAN_BGR = (103.939, 116.779, 123.68)
# VGG sees images resized into this range: under 64 px its fifth block would have no
# pixels left; over 256 px costs time for detail the distance does not need (as upstream).
VGG16_SIZES = (64, 256)

Features = Callable[[tf.Tensor], list[tf.Tensor]]


_DEFAULTS = defaults("project")  # config/schema.yaml's project: section


@dataclass(frozen=True)
class Settings:
    """The optimisation (defaults: the paper's projector)."""

    steps: int = _DEFAULTS["steps"]
    mode: str = _DEFAULTS["mode"]
    lr: float = _DEFAULTS["lr"]
    lr_rampup: float = _DEFAULTS["lr_rampup"]        # share of the steps the learning rate ramps up over
    lr_rampdown: float = _DEFAULTS["lr_rampdown"]      # share of the steps it ramps down over, at the end
    noise_factor: float = _DEFAULTS["noise_factor"]     # initial noise added to w, in units of W's spread
    noise_ramp: float = _DEFAULTS["noise_ramp"]       # share of the steps over which that noise fades out
    noise_weight: float = _DEFAULTS["noise_weight"]      # weight of the noise-correlation penalty
    w_samples: int = _DEFAULTS["w_samples"]         # z draws that estimate the mean w and W's spread
    seed: int = _DEFAULTS["seed"]

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise SetupError(f"projection mode {self.mode!r} is not known; use one of {', '.join(MODES)}")
        if self.steps < 1 or self.lr <= 0 or self.w_samples < 2:
            raise SetupError(f"projection needs steps >= 1, lr > 0 and w_samples >= 2; got {self.steps}, "
                             f"{self.lr}, {self.w_samples}")


@dataclass
class Projection:
    """The answer: ws [num_ws, w_dim] and the optimised noise, plus the trace of the run."""

    ws: np.ndarray
    noise: list[np.ndarray]
    start: np.ndarray                      # ws the optimisation began from
    distance: np.ndarray                   # perceptual distance at each step
    mse: np.ndarray                        # pixel mean squared error ([-1, 1] units) after each step
    frames: list[tuple[int, np.ndarray]] = field(default_factory=list)  # (step, uint8 image)


# ----- targets and weights -------------------------------------------------------------------


def load_target(path: str | os.PathLike, resolution: int) -> np.ndarray:
    """uint8 [res, res, 3]: the image's centred square at the generator's resolution, as the
    images stage would cut and size it."""
    try:
        return to_array(fit_square(load_srgb(path), resolution))
    except ImageRejected as exc:
        raise SetupError(f"cannot project {path}: {exc}; give a readable image file") from None


def fetch_vgg16(dest: str | os.PathLike, url: str = VGG16_URL, sha256: str | None = None) -> Path:
    """Download Keras's VGG16 ImageNet weights (no top) once, checked as check_vgg16 does."""
    return download(url, dest, lambda tmp: check_vgg16(tmp, sha256), "the VGG16 weights",
                    "download them by hand and set project.vgg16 to the file, or use project.distance: discriminator")


def check_vgg16(path: str | os.PathLike, sha256: str | None = None) -> None:
    """Refuse a weights file that is not Keras's (or not the pinned sha256): distances, and
    so projections, would silently change."""
    path = Path(path)
    if not path.is_file():
        raise SetupError(f"VGG16 weights {path} do not exist; set project.vgg16 to a copy of "
                         f"{VGG16_URL.rsplit('/', 1)[1]}, or leave it unset to download it")
    digest = hashlib.md5(path.read_bytes()).hexdigest()
    if digest != VGG16_MD5:
        raise SetupError(f"VGG16 weights {path} have md5 {digest}, expected Keras's {VGG16_MD5}; "
                         "download them again")
    if sha256 and (actual := sha256_file(path)) != sha256:
        raise SetupError(f"VGG16 weights {path} have sha256 {actual}, expected {sha256}; replace the file "
                         "or fix project.vgg16_sha256")


# ----- perceptual distance ----------------------------------------------------------------


def _unit(f: tf.Tensor) -> tf.Tensor:
    """Each pixel's feature vector scaled to unit length (LPIPS): layers then weigh alike
    whatever their activation scale."""
    return f * tf.math.rsqrt(tf.reduce_sum(tf.square(f), axis=-1, keepdims=True) + 1e-10)


def distance(a: Sequence[tf.Tensor], b: Sequence[tf.Tensor]) -> tf.Tensor:
    """Per-image sum over layers of the mean squared difference of unit-normalised features."""
    return tf.add_n([tf.reduce_mean(tf.reduce_sum(tf.square(_unit(x) - _unit(y)), -1), [1, 2])
                     for x, y in zip(a, b)])


def vgg16_features(weights: str | os.PathLike | None, resolution: int) -> Features:
    """VGG16's five block outputs for images in [-1, 1]. weights=None gives random weights
    of the same architecture (tests; this distance means nothing then)."""
    import keras

    size = min(max(resolution, VGG16_SIZES[0]), VGG16_SIZES[1])
    vgg = keras.applications.VGG16(include_top=False, weights=None, input_shape=(size, size, 3))
    if weights is not None:
        vgg.load_weights(str(weights))
    model = keras.Model(vgg.input, [vgg.get_layer(n).output for n in VGG16_LAYERS])
    mean = tf.constant(VGG16_MEAN_BGR, tf.float32)

    def features(images: tf.Tensor) -> list[tf.Tensor]:
        x = (images + 1.0) * 127.5
        if size != resolution:
            x = tf.image.resize(x, [size, size], method="area" if size < resolution else "bilinear")
        return list(model(x[..., ::-1] - mean))

    return features


def discriminator_features(D: networks.Discriminator) -> Features:
    """The discriminator's fromRGB output and every block's output (before minibatch
    stddev, so an image's features never depend on others in its batch)."""
    def features(images: tf.Tensor) -> list[tf.Tensor]:
        x = D.from_rgb(images)
        out = [x]
        for block in D.blocks:
            x = block(x)
            out.append(x)
        return out

    return features


def make_features(kind: str, *, D: networks.Discriminator | None = None, vgg16: str | os.PathLike | None = None,
                  resolution: int | None = None) -> Features:
    """The features of the configured distance."""
    if kind == "vgg16":
        return vgg16_features(vgg16, resolution)
    if kind == "discriminator":
        return discriminator_features(D)
    raise SetupError(f"projection distance {kind!r} is not known; use one of {', '.join(DISTANCES)}")


# ----- the optimisation ---------------------------------------------------------------------


def w_stats(G: networks.Generator, samples: int) -> tuple[np.ndarray, float]:
    """Mean w and W's spread (root mean squared distance from it) over `samples` z draws.
    The sample mean, not the tracked w_avg: an imported or untrained model's buffer need
    not be the mean."""
    w = w_samples(G, samples)
    mean = w.mean(0)
    return mean.astype(np.float32), float(np.sqrt(np.sum((w - mean) ** 2) / samples))


def noise_penalty(noise: Sequence[tf.Tensor]) -> tf.Tensor:
    """Squared autocorrelation of each noise image with its one-pixel shifts, at its own
    resolution and at every 2x coarser one down to 8 px: zero for white noise, large for
    noise that has learned structure."""
    total = tf.constant(0.0)
    for n in noise:
        while True:
            total += (tf.reduce_mean(n * tf.roll(n, 1, axis=1)) ** 2
                      + tf.reduce_mean(n * tf.roll(n, 1, axis=2)) ** 2)
            if n.shape[1] <= 8:
                break
            n = tf.nn.avg_pool2d(n, 2, 2, "VALID")
    return total


def learning_rate(t: float, s: Settings) -> float:
    """lr at progress t in [0, 1): a linear ramp-up, a flat top, a cosine ramp-down."""
    ramp = min(1.0, (1.0 - t) / s.lr_rampdown)
    ramp = 0.5 - 0.5 * math.cos(ramp * math.pi)
    return s.lr * ramp * min(1.0, t / s.lr_rampup)


def project(G: networks.Generator, target: np.ndarray, features: Features, settings: Settings = Settings(), *,
            start: np.ndarray | None = None, frames: int = 0) -> Projection:
    """Project one uint8 image [res, res, 3]. `start` (ws [num_ws, w_dim], e.g. an encoder's
    guess) replaces the mean w as the starting point; `frames` images along the way are
    kept for a video. The recorded errors and frames are of w as it is after each step,
    without the exploration noise: what stopping there would give."""
    s = settings
    if target.shape != (G.resolution, G.resolution, 3):
        raise SetupError(f"a projection target must be {G.resolution}x{G.resolution} RGB, got {target.shape}")
    w_mean, w_std = w_stats(G, s.w_samples)
    start = np.broadcast_to(w_mean, (G.num_ws, G.w_dim)) if start is None else np.asarray(start, np.float32)
    init = start.mean(0, keepdims=True) if s.mode == "w" else start
    w_opt = tf.Variable(init.astype(np.float32))
    rng = np.random.default_rng(s.seed)
    noise = [tf.Variable(rng.standard_normal((1, *shape), dtype=np.float32)) for shape in G.synthesis.noise_shapes]
    params = [w_opt] + noise
    moments = [(tf.Variable(tf.zeros_like(p)), tf.Variable(tf.zeros_like(p))) for p in params]
    image = tf.constant(target[None].astype(np.float32) / 127.5 - 1.0)
    target_features = [tf.constant(f) for f in features(image)]

    @tf.function
    def step(lr: tf.Tensor, w_noise: tf.Tensor, t: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        with tf.GradientTape() as tape:
            ws = tf.broadcast_to(w_opt + w_noise, [G.num_ws, G.w_dim])[None]
            synth = G.synthesis(ws, noise=list(noise))
            dist = distance(features(synth), target_features)[0]
            loss = dist + s.noise_weight * noise_penalty(noise)
        grads = tape.gradient(loss, params)
        for p, g, (m, v) in zip(params, grads, moments):  # Adam (0.9, 0.999), bias-corrected
            m.assign(0.9 * m + 0.1 * g)
            v.assign(0.999 * v + 0.001 * tf.square(g))
            p.assign_sub(lr * (m / (1 - 0.9 ** t)) / (tf.sqrt(v / (1 - 0.999 ** t)) + 1e-8))
        for n in noise:
            centred = n - tf.reduce_mean(n)
            n.assign(centred * tf.math.rsqrt(tf.reduce_mean(tf.square(centred))))
        # The image of w as it now is, without the exploration noise: what stopping here gives.
        now = G.synthesis(tf.broadcast_to(w_opt, [G.num_ws, G.w_dim])[None], noise=list(noise))
        return dist, tf.reduce_mean(tf.square(now - image)), now[0]

    keep = set(np.linspace(0, s.steps - 1, frames).round().astype(int).tolist()) if frames else set()
    dists, mses, shown = [], [], []
    for i in progress(range(s.steps), desc="project", unit="step"):
        t = i / s.steps
        scale = w_std * s.noise_factor * max(0.0, 1.0 - t / s.noise_ramp) ** 2
        w_noise = (rng.standard_normal(init.shape) * scale).astype(np.float32)
        dist, mse, synth = step(tf.constant(learning_rate(t, s), tf.float32), tf.constant(w_noise),
                                tf.constant(i + 1, tf.float32))
        dists.append(float(dist))
        mses.append(float(mse))
        if i in keep:
            shown.append((i, networks.to_uint8(synth)))
    ws = np.broadcast_to(w_opt.numpy(), (G.num_ws, G.w_dim)).copy()
    return Projection(ws, [n.numpy()[0] for n in noise], np.array(start), np.array(dists, np.float32),
                      np.array(mses, np.float32), shown)


def reconstruct(G: networks.Generator, ws: np.ndarray, noise: Sequence[np.ndarray] | None) -> np.ndarray:
    """uint8 image of ws with the projection's own noise (the generator's constant noise
    when it kept none)."""
    layers = None if noise is None else [tf.constant(n[None]) for n in noise]
    return networks.to_uint8(G.synthesis(tf.constant(ws[None]), noise_mode="const", noise=layers))[0]
