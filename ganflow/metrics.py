"""The metrics rule: FID and KID of a round's generator against that round's dataset, as
stylegan2-ada-pytorch's fid50k_full and kid50k_full compute them (Inception pool3
features of every real image and of `images` generated ones, untruncated, with random
noise), from the Inception graph at a local path (feature_nets.py).

Generated image i is seed i's (latents.seed_z, noise drawn per seed), so a rerun gives
the same numbers. The reals are the round's packed images at the model's resolution, as
training read them, without mirroring (upstream's xflip=False).
"""

from __future__ import annotations

import json
import logging
import os
import time

import numpy as np

from . import networks
from .config import defaults
from .feature_metrics import fid, kid, mean_cov
from .feature_nets import load_inception
from .latents import seed_images
from .records import iterate_images
from .runlog import progress
from .tables import atomic_open
from .weights import load_export

log = logging.getLogger(__name__)

_DEFAULTS = defaults("metrics")  # config/schema.yaml's metrics: section


def measure(G: networks.Generator, dataset_dir: str | os.PathLike, features, *, images: int = _DEFAULTS["images"],
            kid_subsets: int = _DEFAULTS["kid_subsets"], kid_subset_size: int = _DEFAULTS["kid_subset_size"],
            batch: int = 16) -> dict:
    """FID and KID of G's `images` samples against every image of the packed dataset."""
    real = np.concatenate([features(pixels) for _, pixels in
                           progress(iterate_images(dataset_dir, batch, G.resolution), desc="reals", unit="batch")])
    generated = seed_images(G, range(images), 1.0, noise_mode="random", batch_size=batch)
    gen = np.concatenate([features(pixels) for _, pixels in
                          progress(generated, desc="generated", unit="batch", total=-(-images // batch))])
    return {"fid": fid(mean_cov(real), mean_cov(gen)),
            "kid": kid(real, gen, subsets=kid_subsets, subset_size=kid_subset_size),
            "real_images": len(real), "generated_images": len(gen)}


def make_metrics(export_dir: str | os.PathLike, dataset_dir: str | os.PathLike, out_json: str | os.PathLike, *,
                 inception: str | os.PathLike, inception_sha256: str | None = None, **settings) -> dict:
    """The metrics rule: round r's metrics.json."""
    started = time.perf_counter()
    G, _, _ = load_export(export_dir)
    result = measure(G, dataset_dir, load_inception(inception, inception_sha256), **settings)
    with atomic_open(out_json) as fh:
        json.dump(result, fh, indent=1, sort_keys=True)
    log.info("FID %.3f, KID %.5f (%d generated vs %d real images) in %.0f s", result["fid"], result["kid"],
             result["generated_images"], result["real_images"], time.perf_counter() - started)
    return result
