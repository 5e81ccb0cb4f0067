"""StyleGAN2 networks: shapes, demodulation, truncation, style layout, checkpoint coverage."""

from __future__ import annotations

import os

import numpy as np
import pytest
import tensorflow as tf

from ganflow import networks

TINY = dict(z_dim=16, w_dim=16, mapping_layers=2, channel_base=256, channel_max=16)


def _generator(resolution: int) -> networks.Generator:
    tf.random.set_seed(resolution)
    return networks.Generator(resolution=resolution, **TINY)


@pytest.mark.parametrize("resolution", [8, 16, 32, 64])
def test_shapes_and_dtypes(resolution: int) -> None:
    G = _generator(resolution)
    D = networks.Discriminator(resolution=resolution, channel_base=256, channel_max=16, mbstd_group=2)
    z = tf.random.normal([4, 16])
    ws = G.mapping(z)
    assert ws.shape == (4, G.num_ws, 16) and G.num_ws == 2 * int(np.log2(resolution)) - 2
    for mode in networks.NOISE_MODES:
        img = G.synthesis(ws, noise_mode=mode)
        assert img.shape == (4, resolution, resolution, 3) and img.dtype == tf.float32
        assert np.isfinite(img.numpy()).all()
    logits = D(G(z))
    assert logits.shape == (4, 1) and logits.dtype == tf.float32


def test_noise_modes_differ_as_documented() -> None:
    G = _generator(16)
    for layer in G.synthesis.convs:
        layer.noise_strength.assign(1.0)
    ws = G.mapping(tf.random.normal([2, 16]))
    const_a, const_b = G.synthesis(ws, noise_mode="const"), G.synthesis(ws, noise_mode="const")
    rand_a, rand_b = G.synthesis(ws, noise_mode="random"), G.synthesis(ws, noise_mode="random")
    none = G.synthesis(ws, noise_mode="none")
    np.testing.assert_array_equal(const_a, const_b)
    assert np.abs(rand_a - rand_b).max() > 1e-3
    assert np.abs(none - const_a).max() > 1e-3
    with pytest.raises(ValueError, match="noise_mode"):
        G.synthesis(ws, noise_mode="fixed")


def test_demodulation_keeps_unit_scale() -> None:
    tf.random.set_seed(1)
    demod = networks.ModulatedConv(64, 64, 3, 16, name="demod")
    plain = networks.ModulatedConv(64, 64, 3, 16, demodulate=False, name="plain")
    plain.weight.assign(demod.weight)
    # Styles far from 1 (the affine bias is 1 at init): w scaled up makes them vary widely.
    w = tf.random.normal([8, 16]) * 4.0
    x = tf.random.normal([8, 16, 16, 64])
    y = demod(x, w).numpy()
    per_sample = y.reshape(8, -1).std(axis=1)
    np.testing.assert_allclose(per_sample, 1.0, atol=0.15)
    # Without demodulation the same styles blow the scale up: the test can fail.
    assert plain(x, w).numpy().std() > 2.0
    up = networks.ModulatedConv(64, 64, 3, 16, up=True, name="up")
    y_up = up(x, w).numpy()
    assert y_up.shape == (8, 32, 32, 64)
    # Bilinear upsampling averages neighbours, which lowers the variance somewhat.
    assert 0.5 < y_up[:, 2:-2, 2:-2].std() < 1.2


def test_truncation_psi_zero_gives_average_image() -> None:
    G = _generator(16)
    w_avg = tf.random.normal([16])
    G.mapping.w_avg.assign(w_avg)
    imgs = G(tf.random.normal([3, 16]) * 3.0, psi=0.0, noise_mode="const").numpy()
    average = G.synthesis(tf.broadcast_to(w_avg, [1, G.num_ws, 16]), noise_mode="const").numpy()
    for img in imgs:
        np.testing.assert_allclose(img, average[0], atol=1e-5)
    free = G(tf.random.normal([3, 16]), noise_mode="const").numpy()
    assert np.abs(free[0] - free[1]).max() > 1e-2


def test_truncation_cutoff_leaves_later_layers() -> None:
    G = _generator(32)
    z = tf.random.normal([2, 16])
    full = G.mapping(z).numpy()
    cut = G.mapping(z, psi=0.0, cutoff=3).numpy()
    np.testing.assert_allclose(cut[:, :3], np.broadcast_to(G.mapping.w_avg.numpy(), cut[:, :3].shape))
    np.testing.assert_array_equal(cut[:, 3:], full[:, 3:])
    half = G.mapping(z, psi=0.5).numpy()
    np.testing.assert_allclose(half, G.mapping.w_avg.numpy() + 0.5 * (full - G.mapping.w_avg.numpy()),
                               rtol=1e-5, atol=1e-6)


def test_style_layout_follows_resolution() -> None:
    assert networks.num_ws_for(1024) == 18
    res = networks.ws_resolutions(512)
    assert len(res) == 16 and res[0] == 4 and res[-1] == 512 and res == sorted(res)
    groups = networks.style_groups(512)
    assert groups["coarse"][0] == 0 and groups["fine"][1] == 16
    assert groups["coarse"][1] == groups["middle"][0] and groups["middle"][1] == groups["fine"][0]
    assert max(res[: groups["coarse"][1]]) == 8 and max(res[: groups["middle"][1]]) == 32
    small = networks.style_groups(16)
    assert all(b > a for a, b in small.values()) and small["fine"][1] == networks.num_ws_for(16)
    with pytest.raises(ValueError, match="power of two"):
        networks.num_ws_for(48)


def test_minibatch_stddev_groups_are_consecutive() -> None:
    """D on a batch of 4 with groups of 2 equals D on each half: the property that makes
    gradient accumulation over micro-batches of 2 equal the batch of 4."""
    tf.random.set_seed(3)
    D = networks.Discriminator(resolution=16, channel_base=256, channel_max=16, mbstd_group=2)
    x = tf.random.normal([4, 16, 16, 3])
    whole = D(x).numpy()
    halves = np.concatenate([D(x[:2]).numpy(), D(x[2:]).numpy()])
    np.testing.assert_allclose(whole, halves, rtol=1e-5, atol=1e-6)
    swapped = D(tf.gather(x, [0, 2, 1, 3])).numpy()
    assert np.abs(swapped[[0, 2, 1, 3]] - whole).max() > 1e-6  # grouping matters at all
    assert D(x[:3]).shape == (3, 1)  # a batch the group does not divide still works


def test_checkpoint_holds_every_variable(tmp_path) -> None:
    G = _generator(16)
    D = networks.Discriminator(resolution=16, channel_base=256, channel_max=16)
    prefix = tf.train.Checkpoint(G=G, D=D).write(str(tmp_path / "ckpt"))
    saved = [k for k, _ in tf.train.list_variables(prefix) if k.endswith("VARIABLE_VALUE")]
    assert len(saved) == len(G.weights) + len(D.weights)
    G2 = _generator(16)
    tf.train.Checkpoint(G=G2).read(prefix).expect_partial().assert_existing_objects_matched()
    z = tf.random.normal([2, 16])
    np.testing.assert_array_equal(G(z, noise_mode="const"), G2(z, noise_mode="const"))


def test_to_uint8_clips() -> None:
    out = networks.to_uint8(np.array([-1.5, -1.0, 0.0, 1.0, 2.0], np.float32))
    assert out.dtype == np.uint8 and out.tolist() == [0, 0, 128, 255, 255]


def test_fused_bias_lrelu_has_autodiffs_first_and_second_derivatives() -> None:
    """The hand-written gradient of the leaky ReLU, and its own gradient (R1 and the path
    length differentiate through it twice), with bias and gain as the layers fold them,
    equal autodiff of the plain formula."""
    def plain(x, b):
        return tf.maximum(x + b, (x + b) * networks.LRELU_SLOPE) * networks.LRELU_GAIN

    x, b = tf.random.normal([3, 5, 5, 4], seed=1), tf.random.normal([4], seed=2)
    weights = tf.random.normal([3, 5, 5, 4], seed=3)

    def derivatives(act):
        with tf.GradientTape(persistent=True) as outer:
            outer.watch([x, b])
            with tf.GradientTape() as inner:
                inner.watch([x, b])
                y = act(x, b)
                total = tf.reduce_sum(tf.square(y) * weights)
            dx, db = inner.gradient(total, [x, b])
            penalty = tf.reduce_sum(tf.square(dx)) + tf.reduce_sum(tf.square(db))
        return [y, dx, db, *outer.gradient(penalty, [x, b])]

    def fused(x, b):  # as the layers use it: the gain folded into what comes before
        g = networks.LRELU_GAIN
        return networks._lrelu(tf.nn.bias_add(x * g, b * g))

    for got, want in zip(tf.function(lambda: derivatives(fused))(), derivatives(plain)):
        scale = float(tf.reduce_max(tf.abs(want)))
        assert scale > 0
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * scale)


# ONEDNN_MAX_CPU_ISA=AVX2 on an AVX-512 CPU imitates an AVX2 machine's convolutions, but a
# bfloat16 matmul there segfaults (TensorFlow picks oneDNN's path by the real CPU's flags,
# which the limit then forbids); a real AVX2-only CPU runs this test (issue 27's EPYC did).
@pytest.mark.skipif(os.environ.get("ONEDNN_MAX_CPU_ISA", "").upper() in ("SSE41", "AVX", "AVX2", "AVX2_VNNI"),
                    reason="bfloat16 segfaults under the ONEDNN_MAX_CPU_ISA imitation of an older CPU")
def test_bfloat16_convolutions_match_float32() -> None:
    G32, G16 = _generator(16), networks.Generator(resolution=16, conv_dtype="bfloat16", **TINY)
    D32 = networks.Discriminator(resolution=16, channel_base=256, channel_max=16)
    D16 = networks.Discriminator(resolution=16, channel_base=256, channel_max=16, conv_dtype="bfloat16")
    for a, b in zip(G32.weights + D32.weights, G16.weights + D16.weights):
        b.assign(a)
    z = tf.random.normal([4, 16])
    img32, img16 = G32(z, noise_mode="const"), G16(z, noise_mode="const")
    assert img16.dtype == tf.float32 and D16(img16).dtype == tf.float32
    scale = float(tf.math.reduce_std(img32))
    assert float(tf.reduce_max(tf.abs(img32 - img16))) < 0.1 * scale
    assert float(tf.reduce_max(tf.abs(img32 - img16))) > 0  # bfloat16 was really used
    np.testing.assert_allclose(D16(img32), D32(img32), atol=0.05 * float(tf.reduce_max(tf.abs(D32(img32)))) + 1e-3)


# ----- border handling and options as in the official implementation --------------------
# (tests/test_import_weights.py compares whole networks with the official outputs)

def _upfirdn_reference(x: np.ndarray, up: int, down: int, pad: tuple[int, int], gain: float) -> np.ndarray:
    """upfirdn on NHWC by the definition: zeros after each sample, zero padding, filtering
    with the [1,3,3,1] binomial, every down-th sample kept."""
    n, h, w, c = x.shape
    z = np.zeros((n, h * up, w * up, c), x.dtype)
    z[:, ::up, ::up] = x
    z = np.pad(z, [(0, 0), pad, pad, (0, 0)])
    k = np.outer([1, 3, 3, 1], [1, 3, 3, 1]) / 64.0 * gain
    out = np.zeros((n, z.shape[1] - 3, z.shape[2] - 3, c))
    for dy in range(4):
        for dx in range(4):
            out += k[dy, dx] * z[:, dy:dy + out.shape[1], dx:dx + out.shape[2]]
    return out[:, ::down, ::down]


@pytest.mark.parametrize("up, down, pad, gain", [(2, 1, (2, 1), 4.0), (1, 1, (1, 1), 4.0), (1, 2, (1, 1), 1.0),
                                                 (1, 1, (2, 2), 1.0)])
def test_upfirdn_is_zero_padded_resampling(up: int, down: int, pad: tuple[int, int], gain: float) -> None:
    x = np.random.default_rng(0).standard_normal((2, 5, 6, 3)).astype(np.float32)
    got = networks._upfirdn2d(tf.constant(x), up=up, down=down, pad=pad, gain=gain).numpy()
    np.testing.assert_allclose(got, _upfirdn_reference(x, up, down, pad, gain), atol=1e-5)
    if up == 2:  # the skip image: a flat image keeps its level inside and darkens at the borders
        flat = networks._upfirdn2d(tf.ones([1, 4, 4, 1]), up=2, pad=pad, gain=gain).numpy()[0, :, :, 0]
        np.testing.assert_allclose(flat[1:-1, 1:-1], 1.0, atol=1e-6)
        np.testing.assert_allclose(flat[0, 1:-1], 0.75, atol=1e-6)


def test_up_convolution_keeps_the_whole_transposed_convolution() -> None:
    """The 3x3 up-convolution: all 2H+1 samples of the stride-2 transposed convolution, then
    the [1,3,3,1] blur padded (1, 1): the official layout, border samples included."""
    tf.random.set_seed(4)
    conv = networks.ModulatedConv(3, 2, 3, 8, up=True, demodulate=False, name="up")
    conv.affine.weight.assign(tf.zeros_like(conv.affine.weight))  # styles are the bias: 1
    x = np.random.default_rng(1).standard_normal((1, 4, 5, 3)).astype(np.float32)
    w = conv.weight.numpy() * conv.weight_gain
    full = np.zeros((1, 9, 11, 2))
    for i in range(4):
        for j in range(5):
            full[0, 2 * i:2 * i + 3, 2 * j:2 * j + 3] += np.einsum("c,hwco->hwo", x[0, i, j], w)
    expected = _upfirdn_reference(full, 1, 1, (1, 1), 4.0)
    np.testing.assert_allclose(conv(tf.constant(x), tf.zeros([1, 8])).numpy(), expected, atol=1e-5)


def test_strided_minibatch_stddev_groups() -> None:
    """'strided' groups (the official layout): images i and i + N/G of a batch of N."""
    tf.random.set_seed(5)
    D = networks.Discriminator(resolution=16, channel_base=256, channel_max=16, mbstd_group=2,
                               mbstd_grouping="strided")
    x = tf.random.normal([4, 16, 16, 3])
    whole = D(x).numpy()
    pairs = np.concatenate([D(tf.gather(x, [0, 2])).numpy(), D(tf.gather(x, [1, 3])).numpy()])
    np.testing.assert_allclose(whole[[0, 2, 1, 3]], pairs, rtol=1e-5, atol=1e-6)
    consecutive = networks.Discriminator(**{**D.architecture, "mbstd_grouping": "consecutive"})
    for a, b in zip(consecutive.weights, D.weights):
        a.assign(b)
    assert np.abs(consecutive(x).numpy() - whole).max() > 1e-6
    with pytest.raises(ValueError, match="mbstd_grouping"):
        networks.Discriminator(resolution=16, mbstd_grouping="random")


def test_conv_clamp_bounds_each_layer() -> None:
    """conv_clamp (off by default) clips every synthesis layer, toRGB and D convolution."""
    tf.random.set_seed(6)
    G = networks.Generator(resolution=16, conv_clamp=0.3, **TINY)
    assert G.architecture["conv_clamp"] == 0.3 and networks.Generator(resolution=16, **TINY).architecture[
        "conv_clamp"] is None
    ws = G.mapping(tf.random.normal([2, 16]) * 3.0)
    layer = G.synthesis.blocks[0].conv1
    x = layer(tf.random.normal([2, 4, 4, 16]) * 5.0, ws[:, 0], noise_mode="const")
    assert float(tf.reduce_max(tf.abs(x))) == pytest.approx(0.3)
    rgb = G.synthesis.blocks[0].torgb(x * 20.0, ws[:, 1])
    assert float(tf.reduce_max(tf.abs(rgb))) == pytest.approx(0.3)
    D = networks.Discriminator(resolution=16, channel_base=256, channel_max=16, conv_clamp=0.3)
    assert float(tf.reduce_max(tf.abs(D.from_rgb(tf.random.normal([2, 16, 16, 3]) * 10.0)))) == pytest.approx(0.3)
