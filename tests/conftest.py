"""Shared fixtures: the bundled third-party resources (cascade, real test art), the repo, and
one tiny run of the whole chain that the pipeline and report tests share."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from workflow import snakemake, tiny_config

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("GANFLOW_SHARED", REPO.parent / "shared")) / "resources"

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _shared(name: str) -> Path:
    path = SHARED / name
    if not path.is_file():
        pytest.fail(f"{path} is missing: tests need ../shared/resources beside the checkout "
                    "(or GANFLOW_SHARED pointing at a folder that holds resources/)")
    return path


@pytest.fixture(scope="session")
def cascade_path() -> Path:
    return _shared("lbpcascade_animeface.xml")


@pytest.fixture(scope="session")
def tadne_grid() -> Path:
    return _shared("testdata/tadne-grid-6x6.jpg")


TRAIN = {"resolution": 16, "z_dim": 32, "w_dim": 32, "mapping_layers": 2, "channel_base": 256,
         "channel_max": 32, "batch_size": 8, "total_kimg": 0.2, "tick_kimg": 0.1, "snapshot_ticks": 1,
         "ema_kimg": 0.05, "grid": [2, 2], "grid_cell_px": 16, "swd_images": 64}
VIDEOS = {"batch": 8, "interpolation": {"grid": [2, 1], "duration": 1, "fps": 6},
          "style_mixing": {"duration": 1, "fps": 6}, "progress": {"fps_in": 10, "fps_out": 20}}


@pytest.fixture(scope="session")
def run(tmp_path_factory, cascade_path):
    """The whole chain on a tiny demo (two rounds, ranking, samples, figures, videos, report
    pages): (workdir, its results/demo)."""
    wd = tmp_path_factory.mktemp("chain")
    tiny_config(wd, cascade_path, rounds=2, train=TRAIN, videos=VIDEOS,
                **{"rank.drop_lowest": 0.25, "rank.drop_highest": 0.1,
                   "samples.seeds": "0-5", "tfrecords.shards": 2})
    snakemake(wd)
    return wd, wd / "results/demo"
