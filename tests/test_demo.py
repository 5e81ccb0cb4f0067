"""The embedded demo mirror: reproducible to the byte, every kind of junk present and as
truth.tsv says, metadata in both Danbooru formats, and faces the anime cascade finds."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path

import cv2
import imagehash
import numpy as np
import pytest
from PIL import Image, UnidentifiedImageError

from ganflow.demo import KINDS, TRUTH_COLUMNS, make_mirror
from ganflow.drawing import HAIR
from ganflow.imaging import ImageRejected, load_srgb
from ganflow.tables import read_tsv

PICTURE_MODES = {"face": "RGB", "rating_q": "RGB", "rating_e": "RGB", "near_dup": "RGB", "tiny": "RGB",
                 "grayscale": "L", "cmyk": "CMYK", "png16": "I;16", "palette": "P"}


@pytest.fixture(scope="module")
def mirror(tmp_path_factory) -> tuple[Path, dict[str, int]]:
    """The default demo mirror, made once for the module."""
    root = tmp_path_factory.mktemp("mirror")
    return root, make_mirror(root)


@pytest.fixture(scope="module")
def truth(mirror) -> list[dict[str, str]]:
    return read_tsv(mirror[0] / "truth.tsv")


def _records(root: Path) -> dict[str, list[str]]:
    """Metadata lines per file, exactly as written."""
    return {name: (root / "metadata" / name).read_text().splitlines()
            for name in ("posts.json", "posts-2021.json")}


def _parsed(root: Path) -> dict[str, dict]:
    """Well-formed records by id as a string, whatever the format; malformed lines skipped."""
    out = {}
    for lines in _records(root).values():
        for line in lines:
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            out[str(rec["id"])] = rec
    return out


def _tags(rec: dict) -> list[str]:
    return [t["name"] for t in rec["tags"]] if "tags" in rec else rec["tag_string"].split()


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_same_bytes_and_a_rerun_touches_nothing(tmp_path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    assert make_mirror(a, n_faces=6, seed=5) == make_mirror(b, n_faces=6, seed=5)
    assert _tree(a) == _tree(b)
    make_mirror(c, n_faces=6, seed=6)
    assert _tree(c) != _tree(a)
    images = [p for p in (a / "original").rglob("*") if p.is_file()]
    before = {p: p.stat().st_mtime_ns for p in images}
    make_mirror(a, n_faces=6, seed=5)
    assert {p: p.stat().st_mtime_ns for p in images} == before


def test_bad_arguments_fail_with_a_sentence(tmp_path):
    with pytest.raises(ValueError, match="n_faces"):
        make_mirror(tmp_path, n_faces=0)
    with pytest.raises(ValueError, match="face"):
        make_mirror(tmp_path, face=(200, 90))


def test_every_kind_is_present_and_counted(mirror, truth):
    root, counts = mirror
    assert list(read_tsv(root / "truth.tsv")[0]) == list(TRUTH_COLUMNS)
    assert counts == dict(Counter(row["kind"] for row in truth))
    assert set(counts) == set(KINDS) and min(counts.values()) >= 1
    assert counts["face"] == 120
    usable = ("face", "rating_q", "rating_e", "cmyk", "png16", "palette")
    junk = sum(n for kind, n in counts.items() if kind not in usable)
    assert 0.08 <= junk / sum(counts.values()) <= 0.16
    ids = [row["id"] for row in truth if row["id"]]
    assert len(ids) == len(set(ids))
    assert len({int(i) % 1000 for i in ids if i.isdigit()}) > 0.8 * len(ids)  # spread over buckets


def test_files_are_what_truth_says(mirror, truth):
    root = mirror[0]
    by_id = {row["id"]: row for row in truth}
    for row in truth:
        kind, path = row["kind"], root / row["file"]
        if kind == "malformed":
            assert row["file"] == ""
            continue
        assert row["file"] == f"original/{int(row['id']) % 1000:04d}/{row['id']}{path.suffix}"
        if kind == "missing":
            assert not path.exists()
            continue
        data = path.read_bytes()
        if kind in PICTURE_MODES:
            with Image.open(path) as img:
                img.load()
                assert img.mode == PICTURE_MODES[kind], row
                size = img.size
            assert load_srgb(path).size == size
            if row["box"]:
                x, y, w, h = map(int, row["box"].split(","))
                assert 0 <= x and 0 <= y and x + w <= size[0] and y + h <= size[1], row
        if kind == "tiny":
            assert size == (24, 24)
        elif kind == "truncated":
            with pytest.raises(OSError), Image.open(path) as img:
                img.load()
            with pytest.raises(ImageRejected) as err:
                load_srgb(path)
            assert err.value.reason == "truncated"
        elif kind == "not_image":
            with pytest.raises(UnidentifiedImageError):
                Image.open(path)
            with pytest.raises(ImageRejected):
                load_srgb(path)
        elif kind == "monochrome":
            assert np.asarray(load_srgb(path), dtype=np.float64).std(axis=(0, 1)).max() < 4
        elif kind == "exact_dup":
            assert data == (root / by_id[row["dup_of"]]["file"]).read_bytes()
        elif kind == "near_dup":
            source = root / by_id[row["dup_of"]]["file"]
            assert data != source.read_bytes()
            with Image.open(path) as a, Image.open(source) as b:
                assert a.size != b.size and 0.85 <= a.width / b.width <= 1.15
                assert imagehash.phash(a) - imagehash.phash(b) <= 8


def test_metadata_in_both_formats_with_malformed_lines(mirror, truth):
    root = mirror[0]
    lines = _records(root)
    kinds = Counter(row["kind"] for row in truth)
    assert sum(len(v) for v in lines.values()) == len(truth)
    assert 0.15 <= len(lines["posts-2021.json"]) / len(truth) <= 0.35

    malformed = 0
    for name, file_lines in lines.items():
        for line in file_lines:
            try:
                rec = json.loads(line)
                int(rec["id"])
            except (json.JSONDecodeError, ValueError):
                malformed += 1
                continue
            if "/" in rec["file_ext"]:
                malformed += 1
                continue
            if name == "posts.json":
                assert isinstance(rec["id"], str) and isinstance(rec["tags"], list) and "tag_string" not in rec
            else:
                assert isinstance(rec["id"], int) and isinstance(rec["tag_string"], str) and "tags" not in rec
            assert rec["rating"] in ("s", "q", "e")
    assert malformed == kinds["malformed"]

    records = _parsed(root)
    for row in truth:
        if row["kind"] in ("malformed", "missing"):
            continue
        rec, path = records[row["id"]], root / row["file"]
        assert rec["md5"] == hashlib.md5(path.read_bytes()).hexdigest()
        assert rec["file_ext"] == path.suffix[1:]
        if row["kind"] != "not_image":
            with Image.open(path) as img:
                assert (int(rec["image_width"]), int(rec["image_height"])) == img.size
        assert rec["rating"] == {"rating_q": "q", "rating_e": "e"}.get(row["kind"], "s")


def test_tags_describe_the_drawings(mirror, truth):
    """Face posts carry 1girl and the hair colour actually drawn; junk carries other tags."""
    root = mirror[0]
    records = _parsed(root)
    checked = 0
    for row in truth:
        if row["kind"] == "malformed":
            continue
        tags = _tags(records[row["id"]])
        if row["kind"] in ("monochrome", "not_image"):
            assert "no_humans" in tags and "1girl" not in tags
        if row["kind"] != "face":
            continue
        assert {"1girl", "solo"} <= set(tags)
        assert sum(t.endswith("_eyes") for t in tags) == 1
        hair = [t for t in tags if t in HAIR]
        assert len(hair) == 1
        # The top middle of the face box is the hair cap: its colour must be the tagged one.
        x, y, s, _ = map(int, row["box"].split(","))
        img = np.asarray(load_srgb(root / row["file"]), dtype=np.float64)
        median = np.median(img[y + s // 50:y + s // 10, x + 2 * s // 5:x + 3 * s // 5].reshape(-1, 3), axis=0)
        nearest = min(HAIR, key=lambda k: float(np.sum((np.array(HAIR[k]) - median) ** 2)))
        checked += nearest == hair[0]
    assert checked >= 0.9 * Counter(row["kind"] for row in truth)["face"]


def test_the_anime_face_cascade_finds_the_faces(mirror, truth, cascade_path):
    cascade = cv2.CascadeClassifier(str(cascade_path))
    faces = [row for row in truth if row["kind"] == "face"]
    found = 0
    for row in faces:
        gray = cv2.equalizeHist(np.asarray(load_srgb(mirror[0] / row["file"]).convert("L")))
        boxes = cascade.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5, minSize=(50, 50))
        x, y, s, _ = map(int, row["box"].split(","))
        found += any(abs(bx + bw / 2 - x - s / 2) < s / 2 and abs(by + bh / 2 - y - s / 2) < s / 2
                     for bx, by, bw, bh in boxes)
    assert found / len(faces) >= 0.4
