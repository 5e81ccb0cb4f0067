"""The metrics rule: the field's metrics of a round's generator against that round's
dataset, as stylegan2-ada-pytorch's fid50k_full, kid50k_full and pr50k3_full compute them
(every real image and `images` generated ones, untruncated, with random noise): FID and
KID from Inception pool3 features, precision and recall (k = 3) from VGG16 fc2 features,
each network read from a local file (feature_nets.py). Either file may be missing: its
metrics are then left out, the other's computed.

Generated image i is seed i's (latents.seed_z, noise drawn per seed), so a rerun gives
the same numbers. The reals are the round's packed images at the model's resolution, as
training read them, without mirroring (upstream's xflip=False).
"""

from __future__ import annotations

import json
import logging
import os
import time
from typing import Callable

import numpy as np

from . import networks
from .config import defaults
from .feature_metrics import fid, kid, mean_cov, precision_recall
from .feature_nets import load_inception, load_vgg16
from .latents import seed_images
from .records import iterate_images
from .runlog import SetupError, progress
from .tables import atomic_open
from .weights import load_export

log = logging.getLogger(__name__)

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
    """G -> its metrics against the dataset, for training's snapshots: the networks are
    loaded and the reals read on the first call (only the chief measures)."""
    made: list[Metrics] = []

    def measure(G: networks.Generator) -> dict:
        if not made:
            nets = load_nets(inception=inception, inception_sha256=inception_sha256, vgg16=vgg16,
                             vgg16_sha256=vgg16_sha256)
            made.append(Metrics(dataset_dir, nets, resolution, **settings))
        return made[0](G)

    return measure


def make_metrics(export_dir: str | os.PathLike, dataset_dir: str | os.PathLike, out_json: str | os.PathLike, *,
                 inception: str | os.PathLike | None = None, inception_sha256: str | None = None,
                 vgg16: str | os.PathLike | None = None, vgg16_sha256: str | None = None, **settings) -> dict:
    """The metrics rule: round r's metrics.json, with the metrics of the networks given."""
    started = time.perf_counter()
    nets = load_nets(inception=inception, inception_sha256=inception_sha256, vgg16=vgg16, vgg16_sha256=vgg16_sha256)
    G, _, _ = load_export(export_dir)
    result = Metrics(dataset_dir, nets, G.resolution, **settings)(G)
    with atomic_open(out_json) as fh:
        json.dump(result, fh, indent=1, sort_keys=True)
    log.info("%s (%d generated vs %d real images) in %.0f s", shown(result), result["generated_images"],
             result["real_images"], time.perf_counter() - started)
    return result


def shown(result: dict) -> str:
    """'fid 12.3, kid 0.0045, ...' of the metrics a result holds."""
    return ", ".join(f"{k} {result[k]:.4g}" for k in METRICS if k in result)
