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

from .feature_metrics import measurer, shown
from .tables import atomic_open
from .weights import load_export

log = logging.getLogger(__name__)


def make_metrics(export_dir: str | os.PathLike, dataset_dir: str | os.PathLike, out_json: str | os.PathLike, *,
                 inception: str | os.PathLike | None = None, inception_sha256: str | None = None,
                 vgg16: str | os.PathLike | None = None, vgg16_sha256: str | None = None, **settings) -> dict:
    """The metrics rule: round r's metrics.json, with the metrics of the networks given."""
    started = time.perf_counter()
    G, _, _ = load_export(export_dir)
    result = measurer(dataset_dir, G.resolution, inception=inception, inception_sha256=inception_sha256,
                      vgg16=vgg16, vgg16_sha256=vgg16_sha256, **settings)(G)
    with atomic_open(out_json) as fh:
        json.dump(result, fh, indent=1, sort_keys=True)
    log.info("%s (%d generated vs %d real images) in %.0f s", shown(result), result["generated_images"],
             result["real_images"], time.perf_counter() - started)
    return result
