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
    """The whole chain on a tiny demo (two rounds, ranking, metrics with stand-in Inception
    and VGG16 files, also measured by training every 2 ticks, samples, figures, videos,
    report pages): (workdir, its results/demo)."""
    from test_feature_nets import stand_in, vgg16_stand_in

    if os.environ.get("PYTEST_XDIST_WORKER"):  # once per session, whichever worker: see FIRST below
        try:
            os.close(os.open(tmp_path_factory.getbasetemp().parent / "chain-built", os.O_CREAT | os.O_EXCL))
        except FileExistsError:
            pytest.fail("another pytest-xdist worker already built the whole chain: --dist loadgroup is not "
                        "grouping its modules (pytest-xdist#1386 on pytest 9.2; pyproject.toml pins 9.1)")
    wd = tmp_path_factory.mktemp("chain")
    (wd / "inception.pb").write_bytes(stand_in())
    vgg16_stand_in(wd / "vgg16.h5")
    tiny_config(wd, cascade_path, **{"metrics.inception": str(wd / "inception.pb"),
                                     "metrics.vgg16": str(wd / "vgg16.h5"), "metrics.images": 24,
                                     "train.metrics_ticks": 2})
    snakemake(wd)
    return wd, wd / "results/demo"


# `make test` runs the suite on two pytest-xdist workers (`-n 2 --dist loadgroup`): much of
# it waits on subprocesses (snakemake, sbatch, tf.distribute workers), and those waits
# overlap. A module stays on one worker so that its module fixtures are built once; the
# modules that use the whole chain (`run`) share one worker so that it is built once; the
# longest groups start first so that neither worker is left with one at the end.
FIRST = ("chain", "test_slurm", "test_train", "test_distributed", "test_import_weights", "test_workflow")


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook, which reads the groups
def pytest_collection_modifyitems(config, items):
    chain = {item.module.__name__ for item in items if "run" in getattr(item, "fixturenames", ())}
    for item in items:
        module = item.module.__name__
        item.add_marker(pytest.mark.xdist_group("chain" if module in chain else module))
    order = {name: i for i, name in enumerate(FIRST)}
    items.sort(key=lambda item: order.get("chain" if item.module.__name__ in chain else item.module.__name__,
                                          len(FIRST)))
