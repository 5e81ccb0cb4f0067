"""StyleGAN2 generator and discriminator (Karras et al. 2019, "Analyzing and Improving
the Image Quality of StyleGAN"), written from the paper as Keras 3 layers (TF backend).

Layout is NHWC throughout. Every weight is stored with unit variance and scaled at run
time by He's constant (equalised learning rate), so Adam's per-parameter step sizes are
comparable across layers of very different fan-in. Images are float32, nominally in
[-1, 1] but not clipped (clipping would stop gradients); `to_uint8` clips for saving.

Resampling, its border handling and the order of operations follow NVIDIA's official
implementation, so that its released weights (ganflow.import_weights) make the same
images here: tests/test_import_weights.py compares with its outputs. Where ganflow's
own training needs something else, it is an option (`mbstd_grouping`).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import tensorflow as tf
import keras

from .runlog import SetupError

LRELU_SLOPE = 0.2
# Leaky ReLU drops about half of the signal's power; sqrt(2) restores unit scale (He et al.).
LRELU_GAIN = math.sqrt(2.0)
NOISE_MODES = ("random", "const", "none")
_BINOMIAL = np.array([1.0, 3.0, 3.0, 1.0])


@tf.custom_gradient
def _lrelu_slope(dy: tf.Tensor, y: tf.Tensor) -> tuple[tf.Tensor, object]:
    """dy x the leaky ReLU's slope at its output y (y has the sign of the input).

    Its own gradient, written out as well, is what R1 and the path length take through it
    (second derivatives): d/d dy is the same slope, d/dy zero, left out (None) so that no
    full-size zeros flow back through the forward pass and its convolutions.
    """
    return (tf.raw_ops.LeakyReluGrad(gradients=dy, features=y, alpha=LRELU_SLOPE),
            lambda ddx: (_lrelu_slope(ddx, y), None))


@tf.custom_gradient
def _lrelu(x: tf.Tensor) -> tuple[tf.Tensor, object]:
    """Leaky ReLU (slope 0.2) with a hand-written gradient of any order (_lrelu_slope).

    The official bias_act, fused as far as TensorFlow's kernels go: callers fold the gain
    of sqrt(2) into the weights, demodulation and bias before it (lrelu(g x) = g lrelu(x)
    for g > 0) and add the bias with tf.nn.bias_add, which grappler fuses into the
    convolution; the backward pass is then one kernel from the output alone. (Autodiff of
    max(x, 0.2x) * gain took a compare, two selects and three multiplies each way.)
    """
    y = tf.nn.leaky_relu(x, LRELU_SLOPE)
    return y, lambda dy: _lrelu_slope(dy, y)


def _shape(x: tf.Tensor) -> list:
    """x's shape, static where known: shapes that stay known let grappler plan the
    convolutions and let benchmarks/bench_train.py count their FLOPs from the graph."""
    dynamic = tf.shape(x)
    return [d if d is not None else dynamic[i] for i, d in enumerate(x.shape.as_list())]


def _upfirdn2d(x: tf.Tensor, *, up: int = 1, down: int = 1, pad: tuple[int, int] = (0, 0),
               gain: float = 1.0) -> tf.Tensor:
    """Resample with the [1,3,3,1] binomial filter, the paper's bilinear filtering: insert
    `up - 1` zeros after every sample, zero-pad by `pad` (before, after) on both axes,
    filter, keep every `down`-th sample (upfirdn, as in the official implementation).

    Everything outside the image is zero, so borders get no special treatment: the
    filter sees fewer samples there, exactly as the released models were trained.
    The filter is symmetric, so convolution and correlation agree. It is depthwise and
    costs 16 multiply-adds per value, negligible next to the 3x3 convolutions around it.
    `gain` scales the filter: up**2 after zero insertion, which leaves one sample in
    up**2 non-zero.
    """
    channels = x.shape[-1]
    if up > 1:
        s = _shape(x)
        x = tf.reshape(x, [s[0], s[1], 1, s[2], 1, channels])
        x = tf.pad(x, [[0, 0], [0, 0], [0, up - 1], [0, 0], [0, up - 1], [0, 0]])
        x = tf.reshape(x, [s[0], s[1] * up, s[2] * up, channels])
    k = np.outer(_BINOMIAL, _BINOMIAL)
    k = (k / k.sum() * gain).astype(np.float32)
    kernel = tf.constant(np.tile(k[:, :, None, None], [1, 1, channels, 1]), dtype=x.dtype)
    x = tf.pad(x, [[0, 0], list(pad), list(pad), [0, 0]])
    return tf.nn.depthwise_conv2d(x, kernel, [1, down, down, 1], "VALID")


def _clamp(x: tf.Tensor, limit: float | None) -> tf.Tensor:
    """Clip to [-limit, limit]; None leaves x alone (see Generator's `conv_clamp`)."""
    return x if limit is None else tf.clip_by_value(x, -limit, limit)


def _conv(dtype: str, op, x: tf.Tensor, w: tf.Tensor, *args) -> tf.Tensor:
    """Run a convolution op in `dtype`; weights and activations stay float32 around it.

    bfloat16 keeps float32's range (no loss scaling, no overflow); where the hardware
    multiplies it (AMX or AVX512-BF16 CPUs, tensor cores) a convolution's forward and
    backward pass, casts included, ran 1.5-2.5x as fast (benchmarks/README.md).
    float16 (Volta/Turing tensor cores) has 3 more bits of mantissa but tops out at 65504:
    it runs only where conv_clamp bounds the activations, with loss scaling for the
    backward pass (the trainer's), as the official mixed precision does.
    """
    if dtype == "float32":
        return op(x, w, *args)
    return tf.cast(op(tf.cast(x, dtype), tf.cast(w, dtype), *args), tf.float32)


def fp16_resolution(resolution: int, num_fp16_res: int) -> int:
    """The lowest resolution whose layers compute in float16 under conv_dtype 'float16':
    the highest `num_fp16_res` resolutions do (the official rule; never 4x4)."""
    return max(2 ** (_log2_resolution(resolution) + 1 - num_fp16_res), 8)


def layer_dtype(conv_dtype: str, layer_resolution: int, resolution: int, num_fp16_res: int) -> str:
    """What one block's convolutions compute in: float16 only in the highest resolutions."""
    if conv_dtype != "float16":
        return conv_dtype
    return "float16" if layer_resolution >= fp16_resolution(resolution, num_fp16_res) else "float32"


def _track(owner: keras.layers.Layer, layers: list) -> list:
    """Also bind each layer as a named attribute: Keras 3 turns list attributes into
    containers that tf.train.Checkpoint cannot see, which would silently save nothing."""
    for layer in layers:
        setattr(owner, layer.name, layer)
    return layers


def _normal(stddev: float) -> keras.initializers.Initializer:
    return keras.initializers.RandomNormal(0.0, stddev)


class Dense(keras.layers.Layer):
    """Fully connected layer with equalised learning rate and an optional lr multiplier.

    Storing weights as N(0, 1/lr_mul) and multiplying by lr_mul at run time makes that
    layer learn lr_mul times slower under Adam (the paper's 0.01 for the mapping net).
    """

    def __init__(self, in_features: int, units: int, *, lr_mul: float = 1.0,
                 bias_init: float = 0.0, activate: bool = False, **kwargs) -> None:
        super().__init__(**kwargs)
        self.weight = self.add_weight(shape=(in_features, units), initializer=_normal(1.0 / lr_mul),
                                      name="weight")
        self.bias = self.add_weight(shape=(units,), initializer=keras.initializers.Constant(bias_init / lr_mul),
                                    name="bias")
        # The activation's gain folded into the weights and bias (see _lrelu).
        gain = LRELU_GAIN if activate else 1.0
        self.weight_gain = lr_mul / math.sqrt(in_features) * gain
        self.bias_gain = lr_mul * gain
        self.activate = activate
        self.built = True

    def call(self, x: tf.Tensor) -> tf.Tensor:
        y = tf.nn.bias_add(tf.matmul(x, self.weight * self.weight_gain), self.bias * self.bias_gain)
        return _lrelu(y) if self.activate else y


class Conv(keras.layers.Layer):
    """Discriminator convolution, equalised, optionally halving the resolution.

    Downsampling blurs first and then strides (the paper's bilinear downsampling), so the
    strided convolution does not alias high frequencies into the coarser grid.
    `conv_clamp` clips the activated output to [-conv_clamp, conv_clamp] (see Generator).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel: int, *, down: bool = False,
                 bias: bool = True, activate: bool = True, conv_clamp: float | None = None,
                 conv_dtype: str = "float32", **kwargs) -> None:
        super().__init__(**kwargs)
        self.weight = self.add_weight(shape=(kernel, kernel, in_channels, out_channels),
                                      initializer=_normal(1.0), name="weight")
        self.bias = self.add_weight(shape=(out_channels,), initializer="zeros", name="bias") if bias else None
        # The activation's gain folded into the weights and bias (see _lrelu).
        self.act_gain = LRELU_GAIN if activate else 1.0
        self.weight_gain = self.act_gain / math.sqrt(in_channels * kernel * kernel)
        self.kernel = kernel
        self.down = down
        self.activate = activate
        self.conv_clamp = conv_clamp
        self.conv_dtype = conv_dtype
        self.built = True

    def call(self, x: tf.Tensor) -> tf.Tensor:
        w = self.weight * self.weight_gain
        if self.down and self.kernel == 1:
            x = _conv(self.conv_dtype, tf.nn.conv2d, _upfirdn2d(x, down=2, pad=(1, 1)), w, 1, "VALID")
        elif self.down:
            pad = (self.kernel + 1) // 2
            x = _conv(self.conv_dtype, tf.nn.conv2d, _upfirdn2d(x, pad=(pad, pad)), w, 2, "VALID")
        else:
            x = _conv(self.conv_dtype, tf.nn.conv2d, x, w, 1, "SAME")
        if self.bias is not None:
            x = tf.nn.bias_add(x, self.bias * self.act_gain)
        return _clamp(_lrelu(x) if self.activate else x, self.conv_clamp)


class ModulatedConv(keras.layers.Layer):
    """Modulated (and optionally demodulated) convolution, paper section 2.2.

    Implemented by scaling the input channels by the style s and the output channels by
    the demodulation factor d around one ordinary convolution shared by the batch. That
    is algebraically the per-sample weight w'_ijk = s_i w_ijk d_j, and on CPU it runs a
    single batched convolution instead of a grouped one with N groups (see
    benchmarks/bench_train.py for the measurement).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel: int, w_dim: int, *,
                 up: bool = False, demodulate: bool = True, gain: float = 1.0, conv_dtype: str = "float32",
                 **kwargs) -> None:
        super().__init__(**kwargs)
        if up and kernel != 3:
            raise ValueError(f"an upsampling ModulatedConv takes a 3x3 kernel, got {kernel}")
        # Styles start at 1 so that an untrained network passes features through unchanged.
        self.affine = Dense(w_dim, in_channels, bias_init=1.0, name="affine")
        self.weight = self.add_weight(shape=(kernel, kernel, in_channels, out_channels),
                                      initializer=_normal(1.0), name="weight")
        self.weight_gain = 1.0 / math.sqrt(in_channels * kernel * kernel)
        self.out_channels = out_channels
        self.up = up
        self.demodulate = demodulate
        self.gain = gain  # scales the output, at the cost of a per-sample vector (SynthesisLayer's activation gain)
        self.conv_dtype = conv_dtype
        self.built = True

    def call(self, x: tf.Tensor, w: tf.Tensor) -> tf.Tensor:
        styles = self.affine(w)
        weight = self.weight * (self.weight_gain * (1.0 if self.demodulate else self.gain))
        if self.demodulate and self.conv_dtype == "float16":
            # Demodulation divides out any scale of the styles and of each output channel's
            # weights: scaling both to a largest magnitude of 1 changes nothing but keeps the
            # float16 products small (the official code's pre-normalisation).
            weight = weight / tf.reduce_max(tf.abs(weight), axis=[0, 1, 2], keepdims=True)
            styles = styles / tf.reduce_max(tf.abs(styles), axis=1, keepdims=True)
        x = x * styles[:, None, None, :]
        if self.up:
            # The whole 3x3 transposed convolution at stride 2 (2H + 1 samples, none
            # cropped), then the blur padded (1, 1), which brings it back to 2H centred:
            # the official up-convolution. Zero-stuffing keeps a quarter of the samples,
            # hence the gain of 4.
            shape = _shape(x)
            out_shape = tf.stack([shape[0], shape[1] * 2 + 1, shape[2] * 2 + 1, self.out_channels])
            kernel = tf.transpose(weight, [0, 1, 3, 2])
            x = _conv(self.conv_dtype, tf.nn.conv2d_transpose, x, kernel, out_shape, 2, "VALID")
            x = _upfirdn2d(x, pad=(1, 1), gain=4.0)
        else:
            x = _conv(self.conv_dtype, tf.nn.conv2d, x, weight, 1, "SAME")
        if self.demodulate:
            # E[y_j^2] for unit-variance inputs is sum_i,k (s_i w_ijk)^2; divide it out.
            sq = tf.matmul(tf.square(styles), tf.reduce_sum(tf.square(weight), axis=[0, 1]))
            x = x * (tf.math.rsqrt(sq + 1e-8) * self.gain)[:, None, None, :]
        return x


class SynthesisLayer(keras.layers.Layer):
    """Modulated 3x3 conv + per-pixel noise with a learned strength + bias + lrelu
    (clipped to +-conv_clamp when set)."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int, *,
                 up: bool = False, conv_clamp: float | None = None, conv_dtype: str = "float32",
                 **kwargs) -> None:
        super().__init__(**kwargs)
        # The activation's gain folded into demodulation, noise strength and bias (see _lrelu).
        self.conv = ModulatedConv(in_channels, out_channels, 3, w_dim, up=up, gain=LRELU_GAIN, conv_dtype=conv_dtype,
                                  name="conv")
        # Strength starts at zero: noise only enters once the generator finds it useful.
        self.noise_strength = self.add_weight(shape=(), initializer="zeros", name="noise_strength")
        self.bias = self.add_weight(shape=(out_channels,), initializer="zeros", name="bias")
        # A fixed noise image saved with the weights, for reproducible 'const' sampling.
        self.noise_const = self.add_weight(shape=(1, resolution, resolution, 1), initializer=_normal(1.0),
                                           trainable=False, name="noise_const")
        self.resolution = resolution
        self.conv_clamp = conv_clamp
        self.built = True

    def call(self, x: tf.Tensor, w: tf.Tensor, noise_mode: str = "random",
             noise: tf.Tensor | None = None) -> tf.Tensor:
        x = self.conv(x, w)
        if noise is None and noise_mode == "random":
            noise = tf.random.normal([tf.shape(x)[0], self.resolution, self.resolution, 1])
        elif noise is None and noise_mode == "const":
            noise = self.noise_const
        if noise is not None:
            x = x + noise * (self.noise_strength * LRELU_GAIN)
        return _clamp(_lrelu(tf.nn.bias_add(x, self.bias * LRELU_GAIN)), self.conv_clamp)


class ToRGB(keras.layers.Layer):
    """1x1 modulated conv to RGB without demodulation (colour scale must stay free)."""

    def __init__(self, in_channels: int, w_dim: int, *, conv_clamp: float | None = None,
                 conv_dtype: str = "float32", **kwargs) -> None:
        super().__init__(**kwargs)
        self.conv = ModulatedConv(in_channels, 3, 1, w_dim, demodulate=False, conv_dtype=conv_dtype, name="conv")
        self.bias = self.add_weight(shape=(3,), initializer="zeros", name="bias")
        self.conv_clamp = conv_clamp
        self.built = True

    def call(self, x: tf.Tensor, w: tf.Tensor) -> tf.Tensor:
        return _clamp(self.conv(x, w) + self.bias, self.conv_clamp)


def channels_at(resolution: int, channel_base: int, channel_max: int) -> int:
    """Feature maps per layer: halve with each doubling of resolution, capped."""
    return max(1, min(channel_base // resolution, channel_max))


def _log2_resolution(resolution: int) -> int:
    r = int(round(math.log2(resolution))) if resolution > 0 else 0
    if resolution < 8 or 2 ** r != resolution:
        raise ValueError(f"resolution must be a power of two of at least 8, got {resolution}")
    return r


def num_ws_for(resolution: int) -> int:
    """Number of w vectors: one per conv plus one for the last toRGB (18 at 1024px)."""
    return 2 * _log2_resolution(resolution) - 2


def ws_resolutions(resolution: int) -> list[int]:
    """Resolution driven by each w index: one w per conv, coarse to fine (one in the 4x4
    block, two in each later one); a block's toRGB shares its w with the next block's
    first conv, so the final toRGB adds the last index, at full resolution."""
    n = num_ws_for(resolution)
    return [4] + [min(4 * 2 ** ((i + 1) // 2), resolution) for i in range(1, n)]


def style_groups(resolution: int) -> dict[str, tuple[int, int]]:
    """[start, stop) w index ranges of coarse, middle and fine styles.

    The StyleGAN paper splits at 8px (coarse: pose, face shape) and 32px (middle:
    features, eyes) because those are absolute scales of content, so a 512px model keeps
    that split and puts everything from 64px up into 'fine'. A model under 64px has no
    such scales to spare; its w indices are split into thirds instead.
    """
    res = ws_resolutions(resolution)
    n = len(res)
    if resolution >= 64:
        a = sum(r <= 8 for r in res)
        b = sum(r <= 32 for r in res)
    else:
        a, b = round(n / 3), round(2 * n / 3)
    return {"coarse": (0, a), "middle": (a, b), "fine": (b, n)}


def _normalize(x: tf.Tensor) -> tf.Tensor:
    """Each row scaled to unit second moment: every latent (and label embedding) on one sphere."""
    return x * tf.math.rsqrt(tf.reduce_mean(tf.square(x), axis=1, keepdims=True) + 1e-8)


class Mapping(keras.layers.Layer):
    """z (and, for a conditional model, labels c) -> w through an MLP with reduced learning
    rate; tracks the average w.

    `w_avg` is a non-trainable buffer the training loop moves towards the batch mean
    of w; truncation pulls styles towards it. With `c_dim` > 0, c is embedded by a dense
    layer (`embed`, w_dim wide), normalised and concatenated to the normalised z, as the
    official conditional StyleGAN2 does; `z_dim` 0 with `num_ws` None is the
    discriminator's mapping of c alone (no broadcast, no average).
    """

    def __init__(self, z_dim: int, w_dim: int, num_layers: int, lr_mul: float, num_ws: int | None,
                 c_dim: int = 0, **kwargs) -> None:
        super().__init__(**kwargs)
        self.embed = Dense(c_dim, w_dim, name="embed") if c_dim else None
        dims = [z_dim + (w_dim if c_dim else 0)] + [w_dim] * num_layers
        self.fcs = _track(self, [Dense(dims[i], dims[i + 1], lr_mul=lr_mul, activate=True, name=f"fc{i}")
                                 for i in range(num_layers)])
        self.w_avg = (self.add_weight(shape=(w_dim,), initializer="zeros", trainable=False, name="w_avg")
                      if num_ws is not None else None)
        self.z_dim, self.c_dim, self.num_ws = z_dim, c_dim, num_ws
        self.built = True

    def call(self, z: tf.Tensor | None, psi: float | tf.Tensor = 1.0, cutoff: int | None = None,
             c: tf.Tensor | None = None) -> tf.Tensor:
        """ws for latents z (and labels c); psi < 1 pulls the first `cutoff` (default all)
        towards w_avg."""
        if self.c_dim and c is None:
            raise SetupError(f"this generator is conditional ({self.c_dim} labels): it needs labels c with its "
                             "latents, which this stage does not pass yet")
        parts = [_normalize(z)] if self.z_dim else []
        if self.c_dim:
            parts.append(_normalize(self.embed(tf.cast(c, tf.float32))))
        x = tf.concat(parts, axis=1) if len(parts) > 1 else parts[0]
        for fc in self.fcs:
            x = fc(x)
        if self.num_ws is None:
            return x
        ws = tf.tile(x[:, None, :], [1, self.num_ws, 1])
        if isinstance(psi, (int, float)) and psi == 1:
            return ws
        cutoff = self.num_ws if cutoff is None else cutoff
        mask = tf.reshape(tf.range(self.num_ws) < cutoff, [1, self.num_ws, 1])
        truncated = self.w_avg + (ws - self.w_avg) * tf.cast(psi, ws.dtype)
        return tf.where(mask, truncated, ws)


class SynthesisBlock(keras.layers.Layer):
    """One resolution of the synthesis network: conv0 doubles the resolution (the 4x4
    block starts from the learned constant instead), conv1 keeps it, and toRGB adds this
    resolution's colours to the upsampled image of the blocks before (the skip generator).

    The block takes its own slice of ws: one w per conv, then toRGB's, which is also the
    first w of the next block (the paper's two styles per resolution).
    """

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int, *,
                 conv_clamp: float | None = None, conv_dtype: str = "float32", **kwargs) -> None:
        super().__init__(**kwargs)
        cd, cc = conv_dtype, conv_clamp
        # Created in this order (const or conv0, conv1, toRGB) so that a seed gives the
        # same initial weights as it did before blocks existed.
        if resolution == 4:
            self.const = self.add_weight(shape=(1, 4, 4, out_channels), initializer=_normal(1.0), name="const")
            self.conv0 = None
        else:
            self.const = None
            self.conv0 = SynthesisLayer(in_channels, out_channels, w_dim, resolution, up=True, conv_clamp=cc,
                                        conv_dtype=cd, name="conv0")
        self.conv1 = SynthesisLayer(out_channels, out_channels, w_dim, resolution, conv_clamp=cc, conv_dtype=cd,
                                    name="conv1")
        self.torgb = ToRGB(out_channels, w_dim, conv_clamp=cc, conv_dtype=cd, name="torgb")
        self.convs = [c for c in (self.conv0, self.conv1) if c is not None]
        self.num_conv = len(self.convs)
        self.resolution = resolution
        self.built = True

    def call(self, ws: tf.Tensor, x: tf.Tensor | None = None, img: tf.Tensor | None = None,
             noise_mode: str = "random", noise: Sequence[tf.Tensor | None] | None = None
             ) -> tuple[tf.Tensor, tf.Tensor]:
        """ws [N, num_conv + 1, w_dim]; noise one per conv or None. Returns (features, image)."""
        noise = list(noise) if noise is not None else [None] * self.num_conv
        if self.conv0 is None:
            x = tf.tile(self.const, [tf.shape(ws)[0], 1, 1, 1])
        for i, conv in enumerate(self.convs):
            x = conv(x, ws[:, i], noise_mode=noise_mode, noise=noise[i])
        if img is None:
            return x, self.torgb(x, ws[:, self.num_conv])
        # Zero-stuff and blur, like the features: the border pixels see zeros beyond the
        # edge (as the released models were trained), not a replicated edge.
        return x, _upfirdn2d(img, up=2, pad=(2, 1), gain=4.0) + self.torgb(x, ws[:, self.num_conv])


class Synthesis(keras.layers.Layer):
    """Learned 4x4 constant -> one SynthesisBlock per resolution -> skip-connected RGB."""

    def __init__(self, resolution: int, w_dim: int, channel_base: int, channel_max: int, *,
                 conv_clamp: float | None = None, conv_dtype: str = "float32", num_fp16_res: int = 4,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        r = _log2_resolution(resolution)
        ch = [channels_at(2 ** i, channel_base, channel_max) for i in range(r + 1)]
        self.blocks: list[SynthesisBlock] = _track(self, [
            SynthesisBlock(ch[max(i - 1, 2)], ch[i], w_dim, 2 ** i, conv_clamp=conv_clamp,
                           conv_dtype=layer_dtype(conv_dtype, 2 ** i, resolution, num_fp16_res), name=f"block_{2 ** i}")
            for i in range(2, r + 1)])
        self.resolution = resolution
        self.num_ws = num_ws_for(resolution)
        self.built = True

    @property
    def convs(self) -> list[SynthesisLayer]:
        """Every modulated 3x3 conv, coarse to fine: conv i takes w i and noise i."""
        return [conv for block in self.blocks for conv in block.convs]

    @property
    def noise_shapes(self) -> list[tuple[int, int, int]]:
        """Per-sample shape of each noise input, in the order `call(noise=...)` takes them."""
        return [(c.resolution, c.resolution, 1) for c in self.convs]

    def call(self, ws: tf.Tensor, noise_mode: str = "random",
             noise: Sequence[tf.Tensor] | None = None) -> tf.Tensor:
        """`noise` (one [N,H,W,1] tensor per conv) overrides `noise_mode`; the trainer
        draws it itself so that every random number comes from its checkpointed seed."""
        if noise_mode not in NOISE_MODES:
            raise ValueError(f"noise_mode must be one of {NOISE_MODES}, got {noise_mode!r}")
        noise = list(noise) if noise is not None else [None] * len(self.convs)
        x = img = None
        first = 0  # w (and noise) index of the block's first conv; its toRGB's w is the next block's first
        for block in self.blocks:
            n = block.num_conv
            x, img = block(ws[:, first:first + n + 1], x, img, noise_mode=noise_mode, noise=noise[first:first + n])
            first += n
        return img


class Generator(keras.layers.Layer):
    """Mapping + synthesis. The keyword arguments except `conv_dtype` and `num_fp16_res`
    are the architecture (saved as JSON); those two only choose how convolutions compute
    (float16: in the highest num_fp16_res resolutions, see layer_dtype).

    `conv_clamp` (None: off) clips every synthesis layer's and toRGB's output to
    [-conv_clamp, conv_clamp], as the official implementation does for models trained in
    float16 (256 in the released ones); importing such a model sets it, because its
    weights rely on the clipping. ganflow trains without it.
    """

    def __init__(self, *, resolution: int = 512, z_dim: int = 512, w_dim: int = 512,
                 mapping_layers: int = 8, mapping_lr_mul: float = 0.01,
                 channel_base: int = 32768, channel_max: int = 512, conv_clamp: float | None = None,
                 c_dim: int = 0, conv_dtype: str = "float32", num_fp16_res: int = 4, **kwargs) -> None:
        super().__init__(**kwargs)
        self.architecture = dict(resolution=resolution, z_dim=z_dim, w_dim=w_dim,
                                 mapping_layers=mapping_layers, mapping_lr_mul=mapping_lr_mul,
                                 channel_base=channel_base, channel_max=channel_max, conv_clamp=conv_clamp)
        if c_dim:  # (only then: the architectures of unconditional models stay as they were)
            self.architecture["c_dim"] = c_dim
        self.synthesis = Synthesis(resolution, w_dim, channel_base, channel_max, conv_clamp=conv_clamp,
                                   conv_dtype=conv_dtype, num_fp16_res=num_fp16_res, name="synthesis")
        self.mapping = Mapping(z_dim, w_dim, mapping_layers, mapping_lr_mul, self.synthesis.num_ws,
                               c_dim=c_dim, name="mapping")
        self.resolution = resolution
        self.z_dim = z_dim
        self.w_dim = w_dim
        self.c_dim = c_dim
        self.num_ws = self.synthesis.num_ws
        self.built = True

    def call(self, z: tf.Tensor, psi: float = 1.0, cutoff: int | None = None,
             noise_mode: str = "random", c: tf.Tensor | None = None) -> tf.Tensor:
        return self.synthesis(self.mapping(z, psi=psi, cutoff=cutoff, c=c),
                              noise_mode=noise_mode)


MBSTD_GROUPINGS = ("consecutive", "strided")


def _minibatch_stddev(x: tf.Tensor, group: int, grouping: str = "consecutive") -> tf.Tensor:
    """Append the average feature stddev over groups of `group` samples.

    'consecutive' groups are samples 0..G-1, G..2G-1, ...: a micro-batch of gradient
    accumulation then holds whole groups, so accumulating k micro-batches sees exactly the
    statistics a k-times larger batch would (what ganflow's trainer relies on).
    'strided' groups are i, i + N/G, i + 2N/G, ... of a batch of N: the official
    implementations' layout, which an imported model uses so that its scores of a batch
    equal theirs. The group shrinks to divide the batch when needed.
    """
    n = x.shape[0]
    if n is not None:
        group = math.gcd(group, n)
    shape = tf.shape(x)
    if grouping == "strided":
        y = tf.reshape(x, [group, -1, shape[1], shape[2], shape[3]])
        y = tf.sqrt(tf.math.reduce_variance(y, axis=0) + 1e-8)
        y = tf.tile(tf.reduce_mean(y, axis=[1, 2, 3]), [group])
    else:
        y = tf.reshape(x, [-1, group, shape[1], shape[2], shape[3]])
        y = tf.sqrt(tf.math.reduce_variance(y, axis=1) + 1e-8)
        y = tf.repeat(tf.reduce_mean(y, axis=[1, 2, 3]), group)
    y = y[:, None, None, None]
    return tf.concat([x, tf.broadcast_to(y, tf.concat([shape[:3], [1]], 0))], axis=-1)


class DiscriminatorBlock(keras.layers.Layer):
    """Two 3x3 convs (the second halves the resolution) plus a 1x1 downsampled skip."""

    def __init__(self, in_channels: int, out_channels: int, *, conv_clamp: float | None = None,
                 conv_dtype: str = "float32", **kwargs) -> None:
        super().__init__(**kwargs)
        cc, cd = conv_clamp, conv_dtype
        self.conv0 = Conv(in_channels, in_channels, 3, conv_clamp=cc, conv_dtype=cd, name="conv0")
        self.conv1 = Conv(in_channels, out_channels, 3, down=True, conv_clamp=cc, conv_dtype=cd, name="conv1")
        self.skip = Conv(in_channels, out_channels, 1, down=True, bias=False, activate=False,
                         conv_dtype=conv_dtype, name="skip")
        self.built = True

    def call(self, x: tf.Tensor) -> tf.Tensor:
        # 1/sqrt(2) keeps the variance of the sum of two unit-variance branches at one.
        return (self.skip(x) + self.conv1(self.conv0(x))) * (1.0 / math.sqrt(2.0))


class Discriminator(keras.layers.Layer):
    """Residual discriminator with minibatch stddev; returns logits [N, 1].

    The keyword arguments except `conv_dtype` and `num_fp16_res` (the Generator's) are
    the architecture. `mbstd_grouping`
    ('consecutive' or 'strided', see _minibatch_stddev) only matters for batches larger
    than `mbstd_group`; `conv_clamp` is the Generator's (it spares the 1x1 skips, as the
    official implementation does).
    """

    def __init__(self, *, resolution: int = 512, channel_base: int = 32768, channel_max: int = 512,
                 mbstd_group: int = 4, mbstd_grouping: str = "consecutive", conv_clamp: float | None = None,
                 c_dim: int = 0, cmap_dim: int | None = None, c_mapping_layers: int = 8,
                 conv_dtype: str = "float32", num_fp16_res: int = 4, **kwargs) -> None:
        super().__init__(**kwargs)
        if mbstd_grouping not in MBSTD_GROUPINGS:
            raise ValueError(f"mbstd_grouping must be one of {MBSTD_GROUPINGS}, got {mbstd_grouping!r}")
        self.architecture = dict(resolution=resolution, channel_base=channel_base, channel_max=channel_max,
                                 mbstd_group=mbstd_group, mbstd_grouping=mbstd_grouping, conv_clamp=conv_clamp)
        r = _log2_resolution(resolution)
        ch = [channels_at(2 ** i, channel_base, channel_max) for i in range(r + 1)]
        # A conditional D (the official projection discriminator): c mapped to cmap_dim
        # features (default: the 4x4 block's channels), dotted with D's last features.
        self.cmap_dim = (cmap_dim or ch[2]) if c_dim else 0
        self.mapping = (Mapping(0, self.cmap_dim, c_mapping_layers, 0.01, None, c_dim=c_dim, name="mapping")
                        if c_dim else None)
        if c_dim:
            self.architecture.update({"c_dim": c_dim, "cmap_dim": self.cmap_dim,
                                      "c_mapping_layers": c_mapping_layers})
        self.c_dim = c_dim
        cc = conv_clamp

        def dtype(res: int) -> str:
            return layer_dtype(conv_dtype, res, resolution, num_fp16_res)

        self.from_rgb = Conv(3, ch[r], 1, conv_clamp=cc, conv_dtype=dtype(resolution), name="from_rgb")
        self.blocks = _track(self, [DiscriminatorBlock(ch[i], ch[i - 1], conv_clamp=cc, conv_dtype=dtype(2 ** i),
                                                          name=f"block_{2 ** i}")
                                    for i in range(r, 2, -1)])
        self.conv = Conv(ch[2] + 1, ch[2], 3, conv_clamp=cc, conv_dtype=dtype(4), name="conv_4")
        self.fc = Dense(ch[2] * 16, ch[2], activate=True, name="fc")
        self.out = Dense(ch[2], self.cmap_dim or 1, name="out")
        self.mbstd_group = mbstd_group
        self.mbstd_grouping = mbstd_grouping
        self.resolution = resolution
        self.built = True

    def freeze(self, n: int) -> list[str]:
        """Freeze-D: the first n layers from the top resolution keep their weights (their
        variables become non-trainable), counted as stylegan2-ada-pytorch's --freezed counts:
        fromrgb, then each block's conv0, conv1 and skip. Returns the frozen layers' names."""
        layers = [("from_rgb", self.from_rgb)] + [(f"{block.name}.{c.name}", c) for block in self.blocks
                                                  for c in (block.conv0, block.conv1, block.skip)]
        for _, layer in layers[:n]:
            layer.trainable = False
        return [name for name, _ in layers[:n]]

    def call(self, img: tf.Tensor, c: tf.Tensor | None = None) -> tf.Tensor:
        x = self.from_rgb(img)
        for block in self.blocks:
            x = block(x)
        x = self.conv(_minibatch_stddev(x, self.mbstd_group, self.mbstd_grouping))
        x = self.out(self.fc(tf.reshape(x, [tf.shape(x)[0], -1])))
        if self.mapping is None:
            return x
        if c is None:
            raise SetupError(f"this discriminator is conditional ({self.c_dim} labels): it needs each image's "
                             "labels c, which this stage does not pass yet")
        return tf.reduce_sum(x * self.mapping(None, c=c), axis=1, keepdims=True) * (1 / math.sqrt(self.cmap_dim))


def discriminator_layer_count(resolution: int) -> int:
    """Layers Freeze-D can freeze: fromrgb, then conv0, conv1 and skip of each block above 4x4."""
    return 1 + 3 * (_log2_resolution(resolution) - 2)


def to_uint8(images: tf.Tensor | np.ndarray) -> np.ndarray:
    """[-1, 1] float NHWC -> uint8, clipping the overshoot an unclipped generator makes."""
    x = np.asarray(images, dtype=np.float32)
    return np.clip(np.rint((x + 1.0) * 127.5), 0, 255).astype(np.uint8)
