"""End to end: the data stages of the real DAG on a tiny demo, reruns by content, a bad config."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ganflow.tables import read_tsv
from workflow import jobs_planned, snakemake, tiny_config


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory, cascade_path):
    """One full run of the data stages on the tiny demo, shared by the tests below."""
    wd = tmp_path_factory.mktemp("wf")
    tiny_config(wd, cascade_path)
    started = time.monotonic()
    snakemake(wd, "data")
    return wd, time.monotonic() - started


def _rows(wd: Path, stage: str) -> list[dict]:
    return [r for p in sorted((wd / "results/demo" / stage).glob("[0-9]*.tsv")) for r in read_tsv(p)]


def test_data_stages_end_to_end(demo_run):
    wd, seconds = demo_run
    res = wd / "results/demo"
    truth = {r["id"]: r for r in read_tsv(res / "mirror/truth.tsv")}
    images = _rows(wd, "images")
    assert len(images) >= 8, f"only {len(images)} final images"
    for row in images:
        img = Image.open(wd / row["path"])
        assert img.size == (32, 32) and img.mode == "RGB" and img.format == "JPEG"
        assert truth[row["id"]]["kind"] not in {"grayscale", "monochrome", "tiny", "truncated", "not_image"}
    # nothing kept is lost between stages: every unique kept crop becomes exactly one image
    unique = {r["crop"] for r in read_tsv(res / "dedupe.tsv") if r["keep"] == "1"}
    assert {r["image"] for r in images} == unique
    kept = {r["crop"] for r in _rows(wd, "clean") if r["verdict"] == "kept"}
    assert {r["crop"] for r in read_tsv(res / "dedupe.tsv")} == kept
    crops = {r["crop"] for r in _rows(wd, "faces") if r["status"] == "face"}
    assert {r["crop"] for r in _rows(wd, "clean")} == crops
    selected = {r["id"] for r in _rows(wd, "ids")}
    assert {r["id"] for r in _rows(wd, "faces")} == selected
    # junk is caught with its reason somewhere along the way
    reasons = {r["reason"] for r in read_tsv(res / "ids/rejected.tsv")}
    assert {"malformed_json", "bad_id", "bad_file_ext", "missing_file"} <= reasons
    funnel = {r["stage"]: int(r["count"]) for r in read_tsv(res / "report/funnel.tsv") if r["count"]}
    assert funnel["final"] == len(images) and funnel["found"] == len(selected)
    assert funnel["posts"] >= funnel["selected"] >= funnel["found"] >= funnel["with_face"]
    for stage in ("faces", "rejected", "duplicates", "images"):
        assert Image.open(res / f"report/contact-{stage}.png").size[0] > 0
    assert seconds < 180


def _fates(wd: Path) -> dict[str, set[str]]:
    """Every reason (or 'final') each source id met on its way through the stages."""
    res = wd / "results/demo"
    fates: dict[str, set[str]] = {}
    for r in read_tsv(res / "ids/rejected.tsv"):
        fates.setdefault(r["id"], set()).add(r["reason"])
    for r in _rows(wd, "faces"):
        if r["status"] != "face":
            fates.setdefault(r["id"], set()).add(r["status"])
    for r in _rows(wd, "clean"):
        if r["verdict"] != "kept":
            fates.setdefault(r["id"], set()).add(r["verdict"])
    crop_ids = {r["crop"]: r["id"] for r in _rows(wd, "clean")}
    for r in read_tsv(res / "dedupe.tsv"):
        if r["keep"] != "1":
            fates.setdefault(crop_ids[r["crop"]], set()).add(f"{r['kind']}_duplicate")
    for r in _rows(wd, "images"):
        fates.setdefault(r["id"], set()).add("final")
    return fates


def test_every_junk_kind_meets_its_reason(demo_run):
    wd, _ = demo_run
    truth = read_tsv(wd / "results/demo/mirror/truth.tsv")
    fates = _fates(wd)
    kinds: dict[str, list[set[str]]] = {}
    for r in truth:
        kinds.setdefault(r["kind"], []).append(fates.get(r["id"], set()))
    assert all(f == {"truncated"} for f in kinds["truncated"])
    assert all(f == {"undecodable"} for f in kinds["not_image"])
    assert all(f == {"missing_file"} for f in kinds["missing"])
    assert all(f <= {"too_small", "no_face"} and f for f in kinds["tiny"])
    assert all(f <= {"grayscale", "no_face"} and f for f in kinds["grayscale"])
    assert all(f <= {"monochrome", "no_face"} and f for f in kinds["monochrome"])
    # odd colour modes decode and go on like any other picture
    for kind in ("cmyk", "palette", "png16"):
        for f in kinds[kind]:
            assert "undecodable" not in f and "truncated" not in f, (kind, f)
    assert any("final" in f for f in kinds["cmyk"] + kinds["palette"])
    # filtered ratings never get as far as face detection
    selected = {r["id"] for r in _rows(wd, "ids")}
    assert not {r["id"] for r in truth if r["kind"] in ("rating_q", "rating_e")} & selected
    # exact duplicates: one copy survives per picture. (Near duplicates are re-scaled
    # sources whose detector boxes shift, so their crops need not be near-identical; the
    # dedupe unit tests cover near-duplicate clustering on planted hashes.)
    for r in truth:
        if r["kind"] == "exact_dup" and "final" in fates.get(r["dup_of"], set()):
            assert "final" not in fates.get(r["id"], set()), r
    malformed = [r for r in read_tsv(wd / "results/demo/ids/rejected.tsv")
                 if r["reason"] in ("malformed_json", "bad_id", "bad_file_ext")]
    assert len(malformed) == len(kinds["malformed"])


def test_rerun_only_what_changed(demo_run):
    wd, _ = demo_run
    assert jobs_planned(wd, "data") == {}, "a second run right after a complete one must have nothing to do"
    sources = [wd / r["path"] for r in _rows(wd, "ids")]
    for p in sources:
        os.utime(p, None)
    assert jobs_planned(wd, "data") == {}, "touching every source image must rerun nothing"
    # edit one decodable face image: its shard's faces/clean/images rerun, plus the global stages
    row = next(r for r in _rows(wd, "faces") if r["status"] == "face")
    src = wd / row["source"]
    original = Image.open(src)
    arr = np.asarray(original.convert("RGB")).copy()
    arr[:4, :4] = 255 - arr[:4, :4]
    Image.fromarray(arr).save(src, format=original.format)
    planned = jobs_planned(wd, "data")
    assert planned.get("faces") == 1 and planned.get("clean") == 1 and planned.get("dedupe") == 1
    assert "ids" not in planned and "demo" not in planned
    snakemake(wd, "data")
    assert jobs_planned(wd, "data") == {}


def test_bad_config_stops_before_any_job(tmp_path, cascade_path):
    tiny_config(tmp_path, cascade_path, **{"faces.min_sise": 40})
    proc = snakemake(tmp_path, check=False)
    assert proc.returncode != 0
    assert "config key faces.min_sise is not known" in proc.stdout + proc.stderr
    assert not (tmp_path / "results").exists()
