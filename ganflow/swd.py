"""Sliced Wasserstein distance on Laplacian-pyramid patches (Karras et al. 2018, ProGAN
paper, section 5): a training-progress metric that needs no pretrained network.

Each pyramid level is a frequency band; 7x7 patches from it describe local structure at
that scale. The distance between the real and generated patch sets is estimated by
projecting both onto random directions and comparing the sorted projections (the 1-D
Wasserstein distance), averaged over directions. Reported values are x1000 as in the
paper; lower is closer.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np
import tensorflow as tf

PATCH = 7
MIN_LEVEL = 16
_GAUSS = np.array([1.0, 4.0, 6.0, 4.0, 1.0]) / 16.0


def _gauss_blur(x: tf.Tensor, gain: float = 1.0) -> tf.Tensor:
    k = np.outer(_GAUSS, _GAUSS) * gain
    kernel = tf.constant(np.tile(k[:, :, None, None], [1, 1, x.shape[-1], 1]).astype(np.float32))
    x = tf.pad(x, [[0, 0], [2, 2], [2, 2], [0, 0]], mode="REFLECT")
    return tf.nn.depthwise_conv2d(x, kernel, [1, 1, 1, 1], "VALID")


def laplacian_pyramid(images: tf.Tensor | np.ndarray, min_res: int = MIN_LEVEL) -> list[tf.Tensor]:
    """Band-pass levels from full resolution down to `min_res`, the last one low-pass."""
    g = tf.convert_to_tensor(images, tf.float32)
    levels = []
    while g.shape[1] > min_res and g.shape[1] % 2 == 0:
        down = _gauss_blur(g)[:, ::2, ::2, :]
        up = tf.nn.conv2d_transpose(down, tf.eye(3, batch_shape=[1, 1]), tf.shape(g), 2, "VALID")
        levels.append(g - _gauss_blur(up, gain=4.0))
        g = down
    levels.append(g)
    return levels


def patch_descriptors(images: tf.Tensor | np.ndarray, patches_per_image: int,
                      rng: np.random.Generator, min_res: int = MIN_LEVEL) -> list[np.ndarray]:
    """Random 7x7 patches per image and pyramid level, flattened: [n*patches, 147] each."""
    out = []
    for level in laplacian_pyramid(images, min_res):
        lv = level.numpy()
        n, h, w, c = lv.shape
        size = min(PATCH, h, w)
        ys = rng.integers(0, h - size + 1, (n, patches_per_image))
        xs = rng.integers(0, w - size + 1, (n, patches_per_image))
        d = np.arange(size)
        patches = lv[np.arange(n)[:, None, None, None],
                     ys[:, :, None, None] + d[None, None, :, None],
                     xs[:, :, None, None] + d[None, None, None, :]]
        out.append(patches.reshape(n * patches_per_image, size * size * c))
    return out


def descriptors_from_batches(batches: Iterable[np.ndarray], patches_per_image: int,
                             seed: int, min_res: int = MIN_LEVEL) -> list[np.ndarray]:
    """Stream image batches into per-level descriptor sets, so the images themselves
    (gigabytes at 512px) are never held in memory at once."""
    rng = np.random.default_rng(seed)
    parts: list[list[np.ndarray]] = []
    for batch in batches:
        for i, d in enumerate(patch_descriptors(batch, patches_per_image, rng, min_res)):
            if i == len(parts):
                parts.append([])
            parts[i].append(d)
    return [np.concatenate(p) for p in parts]


def _normalise(desc: np.ndarray) -> np.ndarray:
    """Zero mean, unit variance per colour channel: the distance then measures structure
    at that scale, not the overall contrast of the band."""
    c = 3
    d = desc.reshape(desc.shape[0], -1, c)
    d = (d - d.mean(axis=(0, 1))) / (d.std(axis=(0, 1)) + 1e-8)
    return d.reshape(desc.shape[0], -1)


def sliced_wasserstein(a: np.ndarray, b: np.ndarray, directions: int = 512, repeats: int = 4,
                       seed: int = 0) -> float:
    """Average 1-D Wasserstein distance of a and b over random unit directions."""
    n = min(len(a), len(b))
    rng = np.random.default_rng(seed)
    a = tf.constant(a[rng.permutation(len(a))[:n]], tf.float32)
    b = tf.constant(b[rng.permutation(len(b))[:n]], tf.float32)
    total = 0.0
    for _ in range(repeats):
        dirs = rng.standard_normal((a.shape[1], directions)).astype(np.float32)
        dirs /= np.linalg.norm(dirs, axis=0, keepdims=True)
        pa = tf.sort(tf.transpose(a @ dirs), axis=1)
        pb = tf.sort(tf.transpose(b @ dirs), axis=1)
        total += float(tf.reduce_mean(tf.abs(pa - pb)))
    return total / repeats


def swd(real: list[np.ndarray], fake: list[np.ndarray], seed: int = 0) -> dict[str, float]:
    """Per-level SWD x1000 keyed 'swd_<level index>' plus their mean under 'swd'."""
    if len(real) != len(fake):
        raise ValueError(f"real and fake pyramids differ in depth ({len(real)} vs {len(fake)} levels)")
    out = {f"swd_{i}": 1e3 * sliced_wasserstein(_normalise(r), _normalise(f), seed=seed + i)
           for i, (r, f) in enumerate(zip(real, fake))}
    out["swd"] = float(np.mean(list(out.values())))
    return out
