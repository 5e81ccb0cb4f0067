"""Adaptive discriminator augmentation (Karras et al. 2020, "Training Generative
Adversarial Networks with Limited Data"): the 'bgc' pipeline of its appendix B, with the
official implementation's parameterisation and resampling, written from the paper and
from reading that code (stylegan2-ada-pytorch), not copied from it.

Every image shown to D (real or generated, in every phase) passes through the same random
pipeline. Geometric transforms (x-flip, 90-degree rotation, integer translation,
isotropic scaling, pre-rotation, anisotropic scaling, post-rotation, fractional
translation) compose into one inverse affine map per image (output pixel -> input pixel,
in pixel units about the image centre). It is executed as the official code does, which
keeps rotations and scalings from aliasing: reflect-pad the image by a margin that covers
every image of the batch, upsample 2x with the sym6 wavelet low-pass filter, bilinear grid
sampling (zeros outside), then sym6 low-pass and 2x downsampling back to the original
size. Colour transforms (brightness, contrast, luma flip, hue rotation, saturation)
compose into one 4x4 matrix on homogeneous RGB. Transform i happens with probability p
(rotation: two halves each with 1 - sqrt(1 - p)); the random numbers are the caller's
(`uniforms` [N, NUM_UNIFORM], `normals` [N, NUM_NORMAL], in the order the official pipe
draws them), so augmentation is reproducible from the training seed and splits across
micro-batches like everything else. The whole pipeline is linear in the images for fixed
random numbers, and differentiable: R1 is taken through it, with respect to the reals
before augmentation.

The pad margin is the one thing that depends on the batch as a whole (upstream pads the
whole batch by its largest need); `margins` computes it for any set of images, and the
trainer passes the margin of the whole global batch to every micro-batch, so that
accumulation still equals the large batch. A fixed margin (`margin=static_margin(size)`,
the largest possible) gives static shapes for XLA; it differs from the batch margin only
where upstream's own padding is too narrow (a few border pixels of the most transformed
image, at the ~1e-3 level).
"""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

# Columns of `uniforms` and `normals`, in the official pipe's order of draws.
(U_XFLIP, U_XFLIP_P, U_ROT90, U_ROT90_P, U_XINT_X, U_XINT_Y, U_XINT_P, U_SCALE_P, U_PREROT, U_PREROT_P,
 U_ANISO_P, U_POSTROT, U_POSTROT_P, U_XFRAC_P, U_BRIGHT_P, U_CONTRAST_P, U_LUMA, U_LUMA_P, U_HUE, U_HUE_P,
 U_SAT_P) = range(21)
N_SCALE, N_ANISO, N_XFRAC_X, N_XFRAC_Y, N_BRIGHT, N_CONTRAST, N_SAT = range(7)
NUM_UNIFORM = 21
NUM_NORMAL = 7

XINT_MAX = 0.125      # integer translation, up to this fraction of the image
SCALE_STD = 0.2       # log2 standard deviations of isotropic and anisotropic scaling
ANISO_STD = 0.2
ROTATE_MAX = 1.0      # arbitrary rotation, fraction of a full turn either way
XFRAC_STD = 0.125     # fractional translation, fraction of the image
BRIGHTNESS_STD = 0.2
CONTRAST_STD = 0.5    # log2
HUE_MAX = 1.0
SATURATION_STD = 1.0  # log2

# The sym6 wavelet scaling filter (Daubechies' least-asymmetric wavelet with 6 vanishing
# moments, 12 taps; the standard tabulated values, e.g. PyWavelets' Wavelet('sym6').dec_lo),
# normalised to unit DC gain. Orthogonal: 2x up- then downsampling with it is the identity.
_SYM6 = np.array([0.015404109327027373, 0.0034907120842174702, -0.11799011114819057, -0.048311742585633,
                  0.4910559419267466, 0.787641141030194, 0.3379294217276218, -0.07263752278646252,
                  -0.021060292512300564, 0.04472490177066578, 0.0017677118642428036, -0.007800708325034148])
SYM6 = (_SYM6 / _SYM6.sum()).astype(np.float32)
HZ_PAD = len(SYM6) // 4  # 3: the filter's reach, in pixels of the original image


# ----- matrices -----------------------------------------------------------------------------


def _matrix(rows: list[list]) -> tf.Tensor:
    """[N, R, C] from rows of per-image [N] tensors or Python numbers."""
    ref = next(x for row in rows for x in row if isinstance(x, tf.Tensor))
    elems = [x if isinstance(x, tf.Tensor) else tf.fill(tf.shape(ref), tf.constant(x, tf.float32))
             for row in rows for x in row]
    return tf.reshape(tf.stack(elems, axis=-1), [-1, len(rows), len(rows[0])])


def _translate2d(tx, ty) -> tf.Tensor:
    return _matrix([[1, 0, tx], [0, 1, ty], [0, 0, 1]])


def _scale2d(sx, sy) -> tf.Tensor:
    return _matrix([[sx, 0, 0], [0, sy, 0], [0, 0, 1]])


def _rotate2d(theta) -> tf.Tensor:
    c, s = tf.cos(theta), tf.sin(theta)
    return _matrix([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def _const3(m: list[list[float]]) -> tf.Tensor:
    return tf.constant(m, tf.float32)[None]


def _gate(value: tf.Tensor, identity: float, u: tf.Tensor, p: tf.Tensor) -> tf.Tensor:
    """`value` with probability p (u < p), else the identity parameter."""
    return tf.where(u < p, value, tf.fill(tf.shape(value), tf.constant(identity, value.dtype)))


def geometry(size: int, p: tf.Tensor | float, uniforms: tf.Tensor, normals: tf.Tensor) -> tf.Tensor:
    """Inverse geometric maps [N, 3, 3]: output pixel -> input pixel, in pixels about the
    image centre. Each factor is the inverse of its transform, applied on the right."""
    p = tf.cast(p, tf.float32)
    u, g = uniforms, normals
    w = h = float(size)
    i = _gate(tf.floor(u[:, U_XFLIP] * 2), 0.0, u[:, U_XFLIP_P], p)
    m = _scale2d(1 / (1 - 2 * i), 1.0)
    i = _gate(tf.floor(u[:, U_ROT90] * 4), 0.0, u[:, U_ROT90_P], p)
    m = m @ _rotate2d(math.pi / 2 * i)
    gate = u[:, U_XINT_P] < p
    tx = tf.where(gate, (u[:, U_XINT_X] * 2 - 1) * XINT_MAX, 0.0)
    ty = tf.where(gate, (u[:, U_XINT_Y] * 2 - 1) * XINT_MAX, 0.0)
    m = m @ _translate2d(-tf.round(tx * w), -tf.round(ty * h))
    s = _gate(tf.pow(2.0, g[:, N_SCALE] * SCALE_STD), 1.0, u[:, U_SCALE_P], p)
    m = m @ _scale2d(1 / s, 1 / s)
    # Rotation in two halves around the anisotropic scaling: P(either) = p.
    p_rot = 1 - tf.sqrt(tf.clip_by_value(1 - p, 0.0, 1.0))
    theta = _gate((u[:, U_PREROT] * 2 - 1) * math.pi * ROTATE_MAX, 0.0, u[:, U_PREROT_P], p_rot)
    m = m @ _rotate2d(theta)
    s = _gate(tf.pow(2.0, g[:, N_ANISO] * ANISO_STD), 1.0, u[:, U_ANISO_P], p)
    m = m @ _scale2d(1 / s, 1 / (1 / s))
    theta = _gate((u[:, U_POSTROT] * 2 - 1) * math.pi * ROTATE_MAX, 0.0, u[:, U_POSTROT_P], p_rot)
    m = m @ _rotate2d(theta)
    gate = u[:, U_XFRAC_P] < p
    tx = tf.where(gate, g[:, N_XFRAC_X] * XFRAC_STD, 0.0)
    ty = tf.where(gate, g[:, N_XFRAC_Y] * XFRAC_STD, 0.0)
    return m @ _translate2d(-tx * w, -ty * h)


def colour(p: tf.Tensor | float, uniforms: tf.Tensor, normals: tf.Tensor) -> tf.Tensor:
    """Colour maps [N, 4, 4] on homogeneous RGB: output = C @ (r, g, b, 1)."""
    p = tf.cast(p, tf.float32)
    u, g = uniforms, normals
    eye = tf.eye(4)[None]
    v = tf.constant([1.0, 1.0, 1.0, 0.0]) / math.sqrt(3.0)  # the luma (grey) axis
    vv = (v[:, None] * v[None, :])[None]
    b = _gate(g[:, N_BRIGHT] * BRIGHTNESS_STD, 0.0, u[:, U_BRIGHT_P], p)
    m = _matrix([[1, 0, 0, b], [0, 1, 0, b], [0, 0, 1, b], [0, 0, 0, 1]])
    c = _gate(tf.pow(2.0, g[:, N_CONTRAST] * CONTRAST_STD), 1.0, u[:, U_CONTRAST_P], p)
    m = _matrix([[c, 0, 0, 0], [0, c, 0, 0], [0, 0, c, 0], [0, 0, 0, 1]]) @ m
    i = _gate(tf.floor(u[:, U_LUMA] * 2), 0.0, u[:, U_LUMA_P], p)
    m = (eye - 2 * vv * i[:, None, None]) @ m  # Householder reflection of the luma axis
    theta = _gate((u[:, U_HUE] * 2 - 1) * math.pi * HUE_MAX, 0.0, u[:, U_HUE_P], p)
    m = _rotate_about(theta) @ m
    s = _gate(tf.pow(2.0, g[:, N_SAT] * SATURATION_STD), 1.0, u[:, U_SAT_P], p)
    return (vv + (eye - vv) * s[:, None, None]) @ m


def _rotate_about(theta: tf.Tensor) -> tf.Tensor:
    """Rodrigues' rotation by theta about the luma axis (1, 1, 1) / sqrt(3) (homogeneous 4x4)."""
    x = y = z = 1 / math.sqrt(3.0)
    s, c = tf.sin(theta), tf.cos(theta)
    cc = 1 - c
    return _matrix([[x * x * cc + c, x * y * cc - z * s, x * z * cc + y * s, 0],
                    [y * x * cc + z * s, y * y * cc + c, y * z * cc - x * s, 0],
                    [z * x * cc - y * s, z * y * cc + x * s, z * z * cc + c, 0],
                    [0, 0, 0, 1]])


# ----- resampling ---------------------------------------------------------------------------


def margins(size: int, maps: tf.Tensor) -> tf.Tensor:
    """Reflection padding [x0, y0, x1, y1] (int32) that every map of `maps` [..., 3, 3]
    needs: the mapped corners of the image plus the filter's reach, at most size - 1."""
    c = (size - 1) / 2
    corners = tf.constant([[-c, -c, 1.0], [c, -c, 1.0], [c, c, 1.0], [-c, c, 1.0]], tf.float32)
    points = tf.einsum("...ij,kj->...ki", maps, corners)
    x = tf.reshape(points[..., 0], [-1])
    y = tf.reshape(points[..., 1], [-1])
    need = tf.stack([tf.reduce_max(-x), tf.reduce_max(-y), tf.reduce_max(x), tf.reduce_max(y)])
    need = tf.clip_by_value(need + (HZ_PAD * 2 - c), 0.0, float(size - 1))
    return tf.cast(tf.math.ceil(need), tf.int32)


def static_margin(size: int) -> tuple[int, int, int, int]:
    """The largest margin any batch can need: a fixed pad (static shapes, for XLA)."""
    return (size - 1,) * 4


def batch_margin(size: int, p: tf.Tensor | float, uniforms: tf.Tensor, normals: tf.Tensor) -> tf.Tensor:
    """The margin of a whole batch of random numbers [..., NUM_UNIFORM] (any leading shape)."""
    u = tf.reshape(uniforms, [-1, NUM_UNIFORM])
    g = tf.reshape(normals, [-1, NUM_NORMAL])
    return margins(size, geometry(size, p, u, g))


def _filter_axis(x: tf.Tensor, taps: np.ndarray, axis: int) -> tf.Tensor:
    """Correlate NHWC x with 1-D `taps` along axis 1 (H) or 2 (W), valid, per channel."""
    channels = x.shape[-1]
    k = len(taps)
    shape = [k, 1] if axis == 1 else [1, k]
    kernel = np.tile(taps.reshape(shape)[:, :, None, None], [1, 1, channels, 1]).astype(np.float32)
    return tf.nn.depthwise_conv2d(x, tf.constant(kernel), [1, 1, 1, 1], "VALID")


def _upsample2x(x: tf.Tensor) -> tf.Tensor:
    """Zero-insert 2x, zero-pad (6, 5), convolve with sym6 x 2 per axis: upfirdn's 2x
    upsampling, output exactly twice the input."""
    s = tf.shape(x)
    c = x.shape[-1]
    x = tf.reshape(x, [s[0], s[1], 1, s[2], 1, c])
    x = tf.pad(x, [[0, 0], [0, 0], [0, 1], [0, 0], [0, 1], [0, 0]])
    x = tf.reshape(x, [s[0], s[1] * 2, s[2] * 2, c])
    k = len(SYM6)
    x = tf.pad(x, [[0, 0], [(k + 1) // 2, (k - 2) // 2], [(k + 1) // 2, (k - 2) // 2], [0, 0]])
    taps = SYM6[::-1] * 2  # a convolution: the filter flipped, then correlated
    return _filter_axis(_filter_axis(x, taps, 2), taps, 1)


def _downsample2x(x: tf.Tensor) -> tf.Tensor:
    """Crop HZ_PAD * 2 - 5 = 1 sample per side, correlate with sym6, keep every second sample."""
    crop = HZ_PAD * 2 - (len(SYM6) - 1) // 2
    x = x[:, crop:-crop, crop:-crop, :]
    x = _filter_axis(_filter_axis(x, SYM6, 2), SYM6, 1)
    return x[:, ::2, ::2, :]


def _grid_sample(images: tf.Tensor, theta: tf.Tensor, out: int) -> tf.Tensor:
    """Bilinear sampling of NHWC `images` on an out x out grid mapped by theta [N, 2, 3]
    in normalised coordinates (pixel centres at (2i + 1) / n - 1), zeros outside: an
    affine grid and grid sample with align_corners=False. Gathers, so that the gradient
    with respect to the images (and its own gradient, for R1) is exact."""
    shape = tf.shape(images)
    n, h, w = shape[0], shape[1], shape[2]
    c = images.shape[-1]
    base = (2 * tf.range(out, dtype=tf.float32) + 1) / out - 1
    ys, xs = tf.meshgrid(base, base, indexing="ij")
    grid = tf.stack([tf.reshape(xs, [-1]), tf.reshape(ys, [-1]), tf.ones([out * out])], 0)  # [3, P]
    src = tf.einsum("nij,jp->nip", theta, grid)
    wf, hf = tf.cast(w, tf.float32), tf.cast(h, tf.float32)
    ix = ((src[:, 0] + 1) * wf - 1) / 2
    iy = ((src[:, 1] + 1) * hf - 1) / 2
    x0, y0 = tf.floor(ix), tf.floor(iy)
    fx, fy = ix - x0, iy - y0
    x0, y0 = tf.cast(x0, tf.int32), tf.cast(y0, tf.int32)
    flat = tf.reshape(images, [n, h * w, c])
    total = 0.0
    for dy, wy in ((0, 1 - fy), (1, fy)):
        for dx, wx in ((0, 1 - fx), (1, fx)):
            yy, xx = y0 + dy, x0 + dx
            inside = (xx >= 0) & (xx < w) & (yy >= 0) & (yy < h)
            idx = tf.clip_by_value(yy, 0, h - 1) * w + tf.clip_by_value(xx, 0, w - 1)
            weight = tf.where(inside, wx * wy, 0.0)
            total += tf.gather(flat, idx, batch_dims=1) * weight[..., None]
    return tf.reshape(total, [n, out, out, c])


def _resample(images: tf.Tensor, maps: tf.Tensor, margin) -> tf.Tensor:
    size = images.shape[1]
    if isinstance(margin, (tuple, list)):
        mx0, my0, mx1, my1 = (int(m) for m in margin)
        fx0, fy0, fx1, fy1 = (float(m) for m in margin)
    else:
        margin = tf.convert_to_tensor(margin, tf.int32)
        mx0, my0, mx1, my1 = tf.unstack(margin)
        fx0, fy0, fx1, fy1 = tf.unstack(tf.cast(margin, tf.float32))
    images = tf.pad(images, [[0, 0], [my0, my1], [mx0, mx1], [0, 0]], mode="REFLECT")
    zero, one = tf.zeros([]), tf.ones([])
    shift = tf.stack([one, zero, (fx0 - fx1) / 2 + zero, zero, one, (fy0 - fy1) / 2 + zero, zero, zero, one])
    maps = tf.reshape(shift, [1, 3, 3]) @ maps
    images = _upsample2x(images)
    maps = _const3([[2, 0, 0], [0, 2, 0], [0, 0, 1]]) @ maps @ _const3([[0.5, 0, 0], [0, 0.5, 0], [0, 0, 1]])
    maps = _const3([[1, 0, -0.5], [0, 1, -0.5], [0, 0, 1]]) @ maps @ _const3([[1, 0, 0.5], [0, 1, 0.5], [0, 0, 1]])
    out = (size + HZ_PAD * 2) * 2
    s = tf.shape(images)
    hu, wu = tf.cast(s[1], tf.float32), tf.cast(s[2], tf.float32)
    to_norm = tf.reshape(tf.stack([2 / wu, zero, zero, zero, 2 / hu, zero, zero, zero, one]), [1, 3, 3])
    maps = to_norm @ maps @ _const3([[out / 2, 0, 0], [0, out / 2, 0], [0, 0, 1]])
    images = _grid_sample(images, maps[:, :2, :], out)
    images = _downsample2x(images)
    return tf.ensure_shape(images, [None, size, size, images.shape[-1]])


def augment(images: tf.Tensor, p: tf.Tensor | float, uniforms: tf.Tensor, normals: tf.Tensor,
            margin=None) -> tf.Tensor:
    """Augment NHWC images in [-1, 1] with probability p per transform.

    `uniforms` [N, NUM_UNIFORM] in [0, 1) and `normals` [N, NUM_NORMAL] are the random
    numbers. `margin`: the reflection padding, [x0, y0, x1, y1]: None pads by what this
    batch needs (the official pipe's behaviour for one call), a tensor by a given margin
    (`batch_margin` of the global batch, so that micro-batches equal the large batch), a
    tuple by a fixed one (`static_margin`, static shapes). The resampling runs whatever
    p is, as upstream's does, so p = 0 reproduces the input to float precision (~1e-6).
    """
    p = tf.cast(p, tf.float32)
    size = images.shape[1]
    maps = geometry(size, p, uniforms, normals)
    if margin is None:
        margin = margins(size, maps)
    images = _resample(images, maps, margin)
    m = colour(p, uniforms, normals)
    return tf.einsum("nij,nhwj->nhwi", m[:, :3, :3], images) + m[:, None, None, :3, 3]
