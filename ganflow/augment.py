"""Adaptive discriminator augmentation (Karras et al. 2020, "Training Generative
Adversarial Networks with Limited Data"), written from the paper's appendix B.

Every image shown to D (real or generated, in both D and G steps) passes through the
same random pipeline: geometric transforms (x-flip, 90-degree rotation, integer
translation, isotropic scaling, rotation, anisotropic scaling, fractional translation)
composed into one affine map and applied with a differentiable bilinear sampler and
reflection padding, then colour transforms (brightness, contrast, luma flip, hue
rotation, saturation) composed into one 4x4 colour matrix. Each transform is applied
with probability p; since p < ~0.8 keeps the transforms "non-leaking", the generator
still learns the un-augmented distribution. The caller draws the random numbers
(`uniforms`, `normals` per image), so augmentation is reproducible from the training
seed and splits across micro-batches like everything else.
"""

from __future__ import annotations

import math

import tensorflow as tf

NUM_UNIFORM = 21
NUM_NORMAL = 10
_LN2 = math.log(2.0)


def _affine(a: tf.Tensor, b: tf.Tensor, c: tf.Tensor, d: tf.Tensor, tx: tf.Tensor, ty: tf.Tensor) -> tf.Tensor:
    """Batch of 3x3 homogeneous matrices [[a, b, tx], [c, d, ty], [0, 0, 1]]."""
    zero, one = tf.zeros_like(a), tf.ones_like(a)
    return tf.reshape(tf.stack([a, b, tx, c, d, ty, zero, zero, one], axis=1), [-1, 3, 3])


def _scale(sx: tf.Tensor, sy: tf.Tensor) -> tf.Tensor:
    zero = tf.zeros_like(sx)
    return _affine(sx, zero, zero, sy, zero, zero)


def _rotate(theta: tf.Tensor) -> tf.Tensor:
    c, s = tf.cos(theta), tf.sin(theta)
    zero = tf.zeros_like(theta)
    return _affine(c, -s, s, c, zero, zero)


def _translate(tx: tf.Tensor, ty: tf.Tensor) -> tf.Tensor:
    one, zero = tf.ones_like(tx), tf.zeros_like(tx)
    return _affine(one, zero, zero, one, tx, ty)


def _gate(value: tf.Tensor, identity: float | tf.Tensor, u: tf.Tensor, p: tf.Tensor) -> tf.Tensor:
    """Use `value` with probability p, otherwise the identity parameter."""
    return tf.where(u < p, value, tf.cast(identity, value.dtype) + tf.zeros_like(value))


def _geometry(size: int, p: tf.Tensor, u: tf.Tensor, g: tf.Tensor) -> tf.Tensor:
    """Output->input coordinate maps [N, 3, 3] in units where the image spans [-1, 1]."""
    flip = _gate(tf.floor(u[:, 1] * 2.0), 0.0, u[:, 0], p)
    m = _scale(1.0 - 2.0 * flip, tf.ones_like(flip))
    rot90 = _gate(tf.floor(u[:, 3] * 4.0), 0.0, u[:, 2], p)
    m = m @ _rotate(rot90 * (math.pi / 2))
    # Whole pixels of up to 1/8 of the image (2 units span the image).
    tx = _gate(tf.round((u[:, 5] * 2 - 1) * 0.125 * size) / size * 2, 0.0, u[:, 4], p)
    ty = _gate(tf.round((u[:, 6] * 2 - 1) * 0.125 * size) / size * 2, 0.0, u[:, 4], p)
    m = m @ _translate(tx, ty)
    iso = _gate(tf.exp(g[:, 0] * 0.2 * _LN2), 1.0, u[:, 7], p)
    m = m @ _scale(iso, iso)
    # Rotation is split into two halves around the anisotropic scaling, each with
    # probability 1 - sqrt(1 - p), so that "some rotation" still happens with p.
    p_rot = 1.0 - tf.sqrt(tf.maximum(1.0 - p, 0.0))
    m = m @ _rotate(_gate((u[:, 9] * 2 - 1) * math.pi, 0.0, u[:, 8], p_rot))
    aniso = _gate(tf.exp(g[:, 1] * 0.2 * _LN2), 1.0, u[:, 10], p)
    m = m @ _scale(aniso, 1.0 / aniso)
    m = m @ _rotate(_gate((u[:, 12] * 2 - 1) * math.pi, 0.0, u[:, 11], p_rot))
    m = m @ _translate(_gate(g[:, 2] * 0.125 * 2, 0.0, u[:, 13], p), _gate(g[:, 3] * 0.125 * 2, 0.0, u[:, 13], p))
    return m


def _reflect(c: tf.Tensor, size: int) -> tf.Tensor:
    """Mirror pixel coordinates into [0, size - 1] (reflection padding, period 2*size)."""
    m = tf.math.floormod(c + 0.5, 2.0 * size)
    return tf.where(m < size, m, 2.0 * size - m) - 0.5


def _sample(images: tf.Tensor, maps: tf.Tensor) -> tf.Tensor:
    """Bilinear resampling at mapped coordinates; built from gathers so that gradients
    to the images are exact (TF's projective-transform op only approximates them)."""
    shape = tf.shape(images)
    n, h, w, c = shape[0], images.shape[1], images.shape[2], images.shape[3]
    ys, xs = tf.meshgrid((tf.range(h, dtype=tf.float32) + 0.5) / h * 2 - 1,
                         (tf.range(w, dtype=tf.float32) + 0.5) / w * 2 - 1, indexing="ij")
    grid = tf.stack([tf.reshape(xs, [-1]), tf.reshape(ys, [-1]), tf.ones([h * w])], axis=0)
    src = tf.einsum("nij,jk->nik", maps, grid)
    sx = _reflect((src[:, 0] + 1) / 2 * w - 0.5, w)
    sy = _reflect((src[:, 1] + 1) / 2 * h - 0.5, h)
    x0, y0 = tf.floor(sx), tf.floor(sy)
    fx, fy = (sx - x0)[..., None], (sy - y0)[..., None]
    flat = tf.reshape(images, [n, h * w, c])

    def at(yy: tf.Tensor, xx: tf.Tensor) -> tf.Tensor:
        yy = tf.clip_by_value(tf.cast(yy, tf.int32), 0, h - 1)
        xx = tf.clip_by_value(tf.cast(xx, tf.int32), 0, w - 1)
        return tf.gather(flat, yy * w + xx, batch_dims=1)

    top = at(y0, x0) * (1 - fx) + at(y0, x0 + 1) * fx
    bottom = at(y0 + 1, x0) * (1 - fx) + at(y0 + 1, x0 + 1) * fx
    return tf.reshape(top * (1 - fy) + bottom * fy, shape)


def _linear(m3: tf.Tensor) -> tf.Tensor:
    """Embed [N, 3, 3] linear colour maps in 4x4 homogeneous matrices."""
    m = tf.pad(m3, [[0, 0], [0, 1], [0, 1]])
    return m + tf.constant([[0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 1.0]])


def _colour(p: tf.Tensor, u: tf.Tensor, g: tf.Tensor) -> tf.Tensor:
    """Per-image 4x4 colour matrices acting on homogeneous RGB in [-1, 1]."""
    one = tf.ones_like(u[:, 0])[:, None, None]
    eye3 = tf.eye(3) * one
    axis = tf.ones([3]) / math.sqrt(3.0)
    outer = axis[:, None] * axis[None, :] * one
    bright = _gate(g[:, 4] * 0.2, 0.0, u[:, 14], p)
    m = _linear(eye3) + tf.pad(bright[:, None, None] * tf.ones([1, 3, 1]), [[0, 0], [0, 1], [3, 0]])
    contrast = _gate(tf.exp(g[:, 5] * 0.5 * _LN2), 1.0, u[:, 15], p)
    m = _linear(eye3 * contrast[:, None, None]) @ m
    lumaflip = _gate(tf.floor(u[:, 17] * 2.0), 0.0, u[:, 16], p)
    m = _linear(eye3 - 2.0 * lumaflip[:, None, None] * outer) @ m
    # Hue: Rodrigues' rotation of RGB about the grey axis.
    theta = _gate((u[:, 19] * 2 - 1) * math.pi, 0.0, u[:, 18], p)[:, None, None]
    k = 1.0 / math.sqrt(3.0)
    cross = tf.constant([[0, -k, k], [k, 0, -k], [-k, k, 0]]) * one
    m = _linear(tf.cos(theta) * eye3 + tf.sin(theta) * cross + (1 - tf.cos(theta)) * outer) @ m
    sat = _gate(tf.exp(g[:, 6] * _LN2), 1.0, u[:, 20], p)
    m = _linear(outer + (eye3 - outer) * sat[:, None, None]) @ m
    return m


def augment(images: tf.Tensor, p: tf.Tensor | float, uniforms: tf.Tensor, normals: tf.Tensor) -> tf.Tensor:
    """Augment NHWC images in [-1, 1] with probability p per transform.

    `uniforms` [N, NUM_UNIFORM] in [0, 1) and `normals` [N, NUM_NORMAL] are the random
    numbers; at p = 0 the output equals the input exactly (identity maps everywhere).
    """
    p = tf.cast(p, tf.float32)
    maps = _geometry(images.shape[1], p, uniforms, normals)
    images = _sample(images, maps)
    colour = _colour(p, uniforms, normals)
    rgb1 = tf.concat([images, tf.ones_like(images[..., :1])], axis=-1)
    return tf.einsum("nij,nhwj->nhwi", colour, rgb1)[..., :3]
