"""The field's metrics on two sets of image features (real, generated), computed as
stylegan2-ada-pytorch computes fid50k_full, kid50k_full and pr50k3_full from them:

- FID (Heusel et al. 2017): the Frechet distance of Gaussians fitted to the features,
  |mu_g - mu_r|^2 + tr(S_g + S_r - 2 (S_g S_r)^1/2), with the covariance normalised by the
  count (not count - 1) and the real part of scipy's matrix square root, as upstream.
- KID (Binkowski et al. 2018): the unbiased estimate of MMD^2 with the cubic polynomial
  kernel (x.y / d + 1)^3, averaged over random subsets of at most 1000 of each set.
- Precision and recall (Kynkaanniemi et al. 2019): each set's manifold is the union of
  balls reaching every feature's k-th nearest neighbour (k = 3) in its own set; precision
  is the share of generated features inside the real manifold, recall the share of real
  ones inside the generated manifold.

The features come from the official networks (Inception-v3 pool3 for FID and KID, VGG16
for precision and recall, feature_nets.py); the arithmetic is in float64 (upstream
computes the distances of precision and recall in float16 on a GPU). `Metrics` makes the
two feature sets, a generator's samples and a packed dataset's images, and applies it: the
metrics rule measures an export with it, training its snapshots (train.metrics_ticks).
"""

from __future__ import annotations

import os
from typing import Callable

import numpy as np
import scipy.linalg

from . import networks
from .config import defaults
from .feature_nets import load_inception, load_vgg16
from .latents import seed_images
from .records import iterate_images
from .runlog import SetupError, progress


def mean_cov(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of [N, D] features, the covariance divided by N (upstream's)."""
    x = np.asarray(features, np.float64)
    mean = x.mean(0)
    return mean, x.T @ x / len(x) - np.outer(mean, mean)


def fid(real: tuple[np.ndarray, np.ndarray], gen: tuple[np.ndarray, np.ndarray]) -> float:
    """FID from the (mean, covariance) of the real and the generated features."""
    (mu_r, s_r), (mu_g, s_g) = real, gen
    root = scipy.linalg.sqrtm(s_g @ s_r)
    return float(np.real(np.square(mu_g - mu_r).sum() + np.trace(s_g + s_r - 2 * root)))


def kid(real: np.ndarray, gen: np.ndarray, *, subsets: int = 100, subset_size: int = 1000, seed: int = 0) -> float:
    """KID of [N, D] features: the unbiased MMD^2 over `subsets` random subsets of
    min(N_real, N_gen, subset_size) features each."""
    real, gen = np.asarray(real, np.float64), np.asarray(gen, np.float64)
    d = real.shape[1]
    m = min(len(real), len(gen), subset_size)
    rng = np.random.default_rng(seed)
    total = 0.0
    for _ in range(subsets):
        x = gen[rng.choice(len(gen), m, replace=False)]
        y = real[rng.choice(len(real), m, replace=False)]
        within = (x @ x.T / d + 1) ** 3 + (y @ y.T / d + 1) ** 3
        between = (x @ y.T / d + 1) ** 3
        total += (within.sum() - np.diag(within).sum()) / (m - 1) - between.sum() * 2 / m
    return float(total / subsets / m)


def _distances(rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Euclidean distances [len(rows), len(cols)]."""
    sq = np.square(rows).sum(1)[:, None] + np.square(cols).sum(1)[None, :] - 2 * rows @ cols.T
    return np.sqrt(np.maximum(sq, 0.0))


def _radii(manifold: np.ndarray, k: int, batch: int) -> np.ndarray:
    """Each feature's distance to its k-th nearest neighbour in its own set (itself not
    counted: the (k+1)-th smallest distance, the first being zero)."""
    return np.concatenate([np.partition(_distances(manifold[i:i + batch], manifold), k, axis=1)[:, k]
                           for i in range(0, len(manifold), batch)])


def _inside(probes: np.ndarray, manifold: np.ndarray, radii: np.ndarray, batch: int) -> np.ndarray:
    return np.concatenate([(_distances(probes[i:i + batch], manifold) <= radii[None, :]).any(1)
                           for i in range(0, len(probes), batch)])


def precision_recall(real: np.ndarray, gen: np.ndarray, *, k: int = 3, batch: int = 2048) -> tuple[float, float]:
    """(precision, recall) of [N, D] features with k-nearest-neighbour manifolds; rows are
    compared `batch` at a time, so memory stays at batch x N distances."""
    real, gen = np.asarray(real, np.float64), np.asarray(gen, np.float64)
    if min(len(real), len(gen)) <= k:
        raise ValueError(f"precision and recall with k={k} need more than {k} features in each set, "
                         f"got {len(real)} real and {len(gen)} generated")
    precision = _inside(gen, real, _radii(real, k, batch), batch).mean()
    recall = _inside(real, gen, _radii(gen, k, batch), batch).mean()
    return float(precision), float(recall)


_DEFAULTS = defaults("metrics")  # config/schema.yaml's metrics: section
METRICS = ("fid", "kid", "precision", "recall")  # what metrics.json may hold, in the order shown


def load_nets(*, inception: str | os.PathLike | None = None, inception_sha256: str | None = None,
              vgg16: str | os.PathLike | None = None, vgg16_sha256: str | None = None) -> dict:
    """The feature networks of the files given: 'inception' (FID, KID), 'vgg16' (precision,
    recall); one sentence if neither is."""
    nets = {}
    if inception:
        nets["inception"] = load_inception(inception, inception_sha256)
    if vgg16:
        nets["vgg16"] = load_vgg16(vgg16, vgg16_sha256)
    if not nets:
        raise SetupError("the metrics need metrics.inception (FID, KID) or metrics.vgg16 (precision, recall); "
                         "see README Metrics")
    return nets


class Metrics:
    """The metrics of any generator's `images` samples against every image of one packed
    dataset, from the feature networks in `nets` (load_nets). The real features are read
    once, so training can measure its snapshots (train.metrics_ticks) without rereading
    the dataset; each image is generated once for every network."""

    def __init__(self, dataset_dir: str | os.PathLike, nets: dict, resolution: int, *,
                 images: int = _DEFAULTS["images"], kid_subsets: int = _DEFAULTS["kid_subsets"],
                 kid_subset_size: int = _DEFAULTS["kid_subset_size"], neighbours: int = _DEFAULTS["neighbours"],
                 batch: int = 16):
        self.nets, self.images, self.batch = nets, images, batch
        self.kid, self.neighbours = dict(subsets=kid_subsets, subset_size=kid_subset_size), neighbours
        self.real = self._features((p for _, p in iterate_images(dataset_dir, batch, resolution)), desc="reals")

    def _features(self, batches, **bar) -> dict[str, np.ndarray]:
        rows = {name: [] for name in self.nets}
        for pixels in progress(batches, unit="batch", **bar):
            for name, net in self.nets.items():
                rows[name].append(net(pixels))
        return {name: np.concatenate(r) for name, r in rows.items()}

    def __call__(self, G: networks.Generator) -> dict:
        gen = self._features((p for _, p in seed_images(G, range(self.images), 1.0, noise_mode="random",
                                                         batch_size=self.batch)),
                             desc="generated", total=-(-self.images // self.batch))
        real = self.real
        result = {"real_images": len(next(iter(real.values()))), "generated_images": len(next(iter(gen.values())))}
        if "inception" in gen:
            result["fid"] = fid(mean_cov(real["inception"]), mean_cov(gen["inception"]))
            result["kid"] = kid(real["inception"], gen["inception"], **self.kid)
        if "vgg16" in gen:
            result["precision"], result["recall"] = precision_recall(real["vgg16"], gen["vgg16"], k=self.neighbours)
        return result


def measurer(dataset_dir: str | os.PathLike, resolution: int, *, inception: str | os.PathLike | None = None,
             inception_sha256: str | None = None, vgg16: str | os.PathLike | None = None,
             vgg16_sha256: str | None = None, **settings) -> Callable[[networks.Generator], dict]:
    """G -> its metrics against the dataset (the metrics rule calls it once, training at
    its snapshots): the networks are loaded and the reals read on the first call, so a
    training worker that never measures (not the chief) never loads them."""
    made: list[Metrics] = []

    def measure(G: networks.Generator) -> dict:
        if not made:
            nets = load_nets(inception=inception, inception_sha256=inception_sha256, vgg16=vgg16,
                             vgg16_sha256=vgg16_sha256)
            made.append(Metrics(dataset_dir, nets, resolution, **settings))
        return made[0](G)

    return measure


def shown(result: dict) -> str:
    """'fid 12.3, kid 0.0045, ...' of the metrics a result holds."""
    return ", ".join(f"{k} {result[k]:.4g}" for k in METRICS if k in result)
