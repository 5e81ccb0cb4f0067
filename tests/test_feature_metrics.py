"""FID, KID and precision/recall on features: FID against the closed form for Gaussians,
KID against a plain double loop of the unbiased MMD^2, precision and recall on planted
manifolds whose answers are known."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ganflow import feature_metrics as fm


def test_mean_cov_divides_by_the_count():
    x = np.random.default_rng(0).normal(size=(50, 4))
    mean, cov = fm.mean_cov(x)
    assert np.allclose(mean, x.mean(0)) and np.allclose(cov, np.cov(x, rowvar=False, bias=True))


def test_fid_is_the_frechet_distance_of_two_gaussians():
    """Diagonal covariances: |mu_g - mu_r|^2 + sum (sqrt(a) - sqrt(b))^2, exactly."""
    rng = np.random.default_rng(1)
    mu_r, mu_g = rng.normal(size=8), rng.normal(size=8)
    a, b = rng.uniform(0.5, 2.0, 8), rng.uniform(0.5, 2.0, 8)
    want = np.square(mu_g - mu_r).sum() + np.square(np.sqrt(a) - np.sqrt(b)).sum()
    assert fm.fid((mu_r, np.diag(a)), (mu_g, np.diag(b))) == pytest.approx(want, rel=1e-9)
    # a rotated pair: the same distance (FID does not depend on the basis)
    q, _ = np.linalg.qr(rng.normal(size=(8, 8)))
    rotated = fm.fid((q @ mu_r, q @ np.diag(a) @ q.T), (q @ mu_g, q @ np.diag(b) @ q.T))
    assert rotated == pytest.approx(want, rel=1e-6)
    x = rng.normal(size=(500, 8))
    assert abs(fm.fid(fm.mean_cov(x), fm.mean_cov(x))) < 1e-6


def _kid_loop(real, gen, subsets, size, seed):
    """The unbiased MMD^2 written out pair by pair, drawing the same subsets."""
    d = real.shape[1]
    rng = np.random.default_rng(seed)
    kernel = lambda u, v: (u @ v / d + 1) ** 3  # noqa: E731
    out = 0.0
    for _ in range(subsets):
        x = gen[rng.choice(len(gen), size, replace=False)]
        y = real[rng.choice(len(real), size, replace=False)]
        xx = sum(kernel(x[i], x[j]) for i in range(size) for j in range(size) if i != j) / (size * (size - 1))
        yy = sum(kernel(y[i], y[j]) for i in range(size) for j in range(size) if i != j) / (size * (size - 1))
        xy = sum(kernel(x[i], y[j]) for i in range(size) for j in range(size)) / size ** 2
        out += xx + yy - 2 * xy
    return out / subsets


def test_kid_is_the_unbiased_mmd_with_the_cubic_kernel():
    rng = np.random.default_rng(2)
    real, gen = rng.normal(size=(40, 5)), rng.normal(0.3, 1.0, size=(30, 5))
    assert fm.kid(real, gen, subsets=3, subset_size=12, seed=7) == pytest.approx(_kid_loop(real, gen, 3, 12, 7))
    same = rng.normal(size=(400, 5))
    assert abs(fm.kid(same[:200], same[200:], subsets=20, subset_size=200)) < 0.02
    assert fm.kid(same, same + 1.0, subsets=20, subset_size=200) > 0.5


def _circle(n, radius=1.0, start=0.0, stop=2 * math.pi):
    t = np.linspace(start, stop, n, endpoint=False)
    return np.stack([radius * np.cos(t), radius * np.sin(t)], 1)


def test_precision_and_recall_on_planted_manifolds():
    real = _circle(400)
    # half the generated points on the real circle, half far off it: precision one half; they
    # cover the whole circle (with their own large radii the far ones reach nothing real)
    half_off = np.concatenate([_circle(200), _circle(200, radius=5.0)])
    precision, recall = fm.precision_recall(real, half_off, batch=64)
    assert precision == pytest.approx(0.5, abs=0.02) and recall > 0.95
    # all on the circle but only on its upper half: precision one, recall about one half
    upper = _circle(200, stop=math.pi)
    precision, recall = fm.precision_recall(real, upper, batch=64)
    assert precision == 1.0 and recall == pytest.approx(0.5, abs=0.03)
    with pytest.raises(ValueError, match="more than 3 features"):
        fm.precision_recall(real, upper[:3])
