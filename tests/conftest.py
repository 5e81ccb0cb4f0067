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


@pytest.fixture(scope="session")
def run(tmp_path_factory, cascade_path):
    """The whole chain on a tiny demo (two rounds, ranking, metrics with a stand-in Inception
    graph, samples, figures, videos, report pages): (workdir, its results/demo)."""
    from test_feature_nets import stand_in

    wd = tmp_path_factory.mktemp("chain")
    (wd / "inception.pb").write_bytes(stand_in())
    tiny_config(wd, cascade_path, **{"metrics.inception": str(wd / "inception.pb"), "metrics.images": 24})
    snakemake(wd)
    return wd, wd / "results/demo"
