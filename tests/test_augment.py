"""ADA augmentation: equal to the official pipe for the same random numbers (fixture made by
tests/fixtures/stylegan2_train/make_fixture.py), identity at p = 0, differentiable, and
independent of how a batch is split once the batch's margin is given."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from ganflow import augment

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "stylegan2_train" / "stylegan2_train.npz"


@pytest.fixture(scope="module")
def ref() -> dict[str, np.ndarray]:
    with np.load(FIXTURE) as f:
        return {k: f[k] for k in f.files if k.startswith(("augtest/", "config/"))}


def smooth(n: int, res: int = 16, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:res, 0:res] / res
    out = [sum(rng.uniform(-0.5, 0.5, 3) * np.sin(2 * np.pi * (rng.uniform(0.5, 3) * yy[..., None]
                                                                 + rng.uniform(0.5, 3) * xx[..., None])
                                                 + rng.uniform(0, 6)) for _ in range(3)) for _ in range(n)]
    return np.asarray(out, np.float32)


def draws(n: int, seed: int) -> tuple[tf.Tensor, tf.Tensor]:
    return (tf.random.stateless_uniform([n, augment.NUM_UNIFORM], [seed, 1]),
            tf.random.stateless_normal([n, augment.NUM_NORMAL], [seed, 2]))


def test_sym6_is_the_official_filter_and_orthogonal(ref) -> None:
    np.testing.assert_allclose(augment.SYM6, ref["config/sym6"], rtol=0, atol=1e-7)
    h = augment.SYM6.astype(np.float64) * np.sqrt(2)
    auto = np.correlate(h, h, "full")[len(h) - 1::2]
    np.testing.assert_allclose(auto, np.eye(len(auto))[0], atol=1e-6)  # shifts by 2 are orthogonal


@pytest.mark.parametrize("case", ["p05", "p10"])
def test_augment_matches_official_forward_and_gradient(ref, case) -> None:
    """'bgc' at p 0.5 and at p 1 (every transform on; margins clamped to size - 1): images
    and the gradient with respect to the input images (what R1 goes through)."""
    x = tf.constant(ref[f"augtest/{case}/x"].transpose(0, 2, 3, 1))
    cot = tf.constant(ref[f"augtest/{case}/cot"].transpose(0, 2, 3, 1))
    u, n, p = ref[f"augtest/{case}/u"], ref[f"augtest/{case}/n"], float(ref[f"augtest/{case}/p"])
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = augment.augment(x, p, tf.constant(u), tf.constant(n))
        total = tf.reduce_sum(y * cot)
    vjp = tape.gradient(total, x)
    want = ref[f"augtest/{case}/out"].transpose(0, 2, 3, 1)
    want_vjp = ref[f"augtest/{case}/vjp"].transpose(0, 2, 3, 1)
    out_diff = float(np.abs(y.numpy() - want).max())
    vjp_diff = float(np.abs(vjp.numpy() - want_vjp).max())
    print(f"{case}: images max abs diff {out_diff:.2e} (of {np.abs(want).max():.2f}), "
          f"gradient {vjp_diff:.2e} (of {np.abs(want_vjp).max():.2f})")
    assert out_diff < 2e-5 and vjp_diff < 1e-4
    if case == "p10":
        assert augment.margins(16, augment.geometry(16, p, u, n)).numpy().max() == 15


def test_augment_identity_at_zero_flip_and_quarter_turn() -> None:
    """p = 0 reproduces the input (the resampling still runs, as upstream's does). Flips
    and quarter turns go through the same sym6 resampling, which is not symmetric: as
    upstream's, they equal the mirrored or turned image only to about 1% (exactly where
    the filter's asymmetry cancels)."""
    x = tf.constant(smooth(4))
    u, g = draws(4, 0)
    np.testing.assert_allclose(augment.augment(x, 0.0, u, g), x, rtol=0, atol=1e-5)
    flip_only = np.ones([4, augment.NUM_UNIFORM], np.float32)
    flip_only[:, augment.U_XFLIP_P], flip_only[:, augment.U_XFLIP] = 0.0, 0.9
    quarter = np.ones([4, augment.NUM_UNIFORM], np.float32)
    quarter[:, augment.U_ROT90_P], quarter[:, augment.U_ROT90] = 0.0, 0.3  # one quarter turn
    for uniforms, expected in ((flip_only, x.numpy()[:, :, ::-1]), (quarter, np.rot90(x.numpy(), 1, axes=(1, 2)))):
        diff = np.abs(augment.augment(x, 0.5, uniforms, g * 0).numpy() - expected)
        assert diff.mean() < 0.02 and diff.max() < 0.1


def test_augment_differentiable_to_second_order() -> None:
    """R1 through the augmentation needs the gradient of the input gradient."""
    x = tf.constant(smooth(4))
    u, g = draws(4, 1)
    w = tf.Variable(tf.ones([3]))
    with tf.GradientTape() as outer:
        with tf.GradientTape() as inner:
            inner.watch(x)
            y = augment.augment(x, 0.8, u, g)
            total = tf.reduce_sum(tf.square(y * w))
        slopes = inner.gradient(total, x)
        penalty = tf.reduce_sum(tf.square(slopes))
    assert np.abs(y - x).max() > 0.1
    assert float(tf.reduce_sum(tf.abs(outer.gradient(penalty, w)))) > 0


def test_global_margin_makes_parts_equal_the_whole_batch() -> None:
    """Upstream pads a batch by what its most transformed image needs, so an image's
    borders depend on its batch; given the whole batch's margin, parts equal the whole."""
    x = tf.constant(smooth(8, seed=3))
    u, g = draws(8, 2)
    margin = augment.batch_margin(16, 0.7, u, g)
    whole = augment.augment(x, 0.7, u, g, margin)
    parts = tf.concat([augment.augment(x[i:i + 2], 0.7, u[i:i + 2], g[i:i + 2], margin) for i in range(0, 8, 2)], 0)
    np.testing.assert_allclose(parts, whole, rtol=0, atol=1e-5)
    np.testing.assert_array_equal(augment.augment(x, 0.7, u, g), whole)  # None: this batch's own margin
    fixed = augment.augment(x, 0.7, u, g, augment.static_margin(16))  # static shapes (XLA)
    assert float(tf.reduce_max(tf.abs(fixed - whole))) < 0.05
