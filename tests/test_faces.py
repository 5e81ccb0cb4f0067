"""faces: the cascade on real machine-generated anime art, crop geometry, bad input rows."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from ganflow import faces
from ganflow.runlog import SetupError
from ganflow.tables import read_tsv, write_tsv
from ganflow.ids import ID_COLUMNS


@pytest.fixture(scope="module")
def tiles(tadne_grid, tmp_path_factory):
    """The 3072px grid sliced into its 36 tiles of 512px, saved as JPEG files."""
    out = tmp_path_factory.mktemp("tiles")
    grid = Image.open(tadne_grid).convert("RGB")
    paths = []
    for k in range(36):
        r, c = divmod(k, 6)
        p = out / f"{k + 1}.jpg"
        grid.crop((c * 512, r * 512, c * 512 + 512, r * 512 + 512)).save(p, quality=95)
        paths.append(p)
    return paths


def test_cascade_finds_faces_in_real_art(cascade_path, tiles):
    cascade = faces.load_cascade(cascade_path)
    params = faces.FaceParams()
    hits = [faces.detect(cascade, np.asarray(Image.open(p).convert("RGB")), params) for p in tiles]
    with_face = sum(1 for h in hits if h)
    assert with_face >= 27, f"only {with_face}/36 tiles had a face"
    for found in hits:
        for x, y, w, h, score in found:
            assert w >= params.min_size and 0 <= x and x + w <= 512 and y + h <= 512


def test_crop_box_margin_square_and_bounds():
    assert faces.crop_box((100, 100, 50, 50), 0.0, True, 400, 400) == (100, 100, 50, 50)
    assert faces.crop_box((100, 100, 50, 50), 0.5, True, 400, 400) == (75, 75, 100, 100)
    assert faces.crop_box((0, 0, 50, 30), 0.0, True, 400, 400) == (0, 0, 50, 50)  # shifted in, not shrunk
    x, y, w, h = faces.crop_box((350, 350, 50, 50), 1.0, True, 400, 300)
    assert (w, h) == (150, 150) and x + w <= 400 and y + h <= 300 and x >= 0 and y >= 0
    assert faces.crop_box((10, 10, 40, 20), 0.0, False, 400, 400) == (10, 10, 40, 20)


def test_make_faces_rows_for_every_image(cascade_path, tiles, tmp_path):
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    junk = tmp_path / "junk.jpg"
    junk.write_text("not an image")
    flat = tmp_path / "flat.png"
    Image.new("RGB", (300, 300), (200, 180, 170)).save(flat)
    rows = [{"id": i + 1, "path": str(p), "rating": "s", "tags": ""} for i, p in enumerate(tiles[:6])]
    rows += [{"id": 101, "path": str(empty), "rating": "s", "tags": ""},
             {"id": 102, "path": str(junk), "rating": "s", "tags": ""},
             {"id": 103, "path": str(flat), "rating": "s", "tags": ""},
             {"id": 104, "path": str(tmp_path / "gone.jpg"), "rating": "s", "tags": ""}]
    write_tsv(tmp_path / "ids.tsv", rows, ID_COLUMNS)
    stale = tmp_path / "crops" / "999-0.png"
    stale.parent.mkdir()
    stale.write_bytes(b"old")
    counts = faces.make_faces(tmp_path / "ids.tsv", tmp_path / "crops", tmp_path / "faces.tsv",
                              faces.FaceParams(), cascade_path=cascade_path)
    out = read_tsv(tmp_path / "faces.tsv")
    status = {}
    for r in out:
        status.setdefault(r["id"], set()).add(r["status"])
    assert set(status) == {str(r["id"]) for r in rows}  # nothing silently lost
    assert status["101"] == {"empty"} and status["102"] == {"undecodable"}
    assert status["103"] == {"no_face"} and status["104"] == {"unreadable"}
    crops = [r for r in out if r["status"] == "face"]
    assert counts["crops"] == len(crops) >= 4
    assert not stale.exists()
    for r in crops:
        img = Image.open(r["path"])
        x, y, w, h = map(int, r["box"].split(","))
        assert img.size == (w, h) and w == h and img.mode == "RGB"
        assert r["crop"].startswith(f"{r['id']}-")
        src = np.asarray(Image.open(r["source"]).convert("RGB"))[y:y + h, x:x + w]
        assert np.array_equal(np.asarray(img), src)  # lossless crop of the decoded source


def test_disabled_detection_passes_images_through(tmp_path):
    write_tsv(tmp_path / "ids.tsv", [{"id": 7, "path": "whatever.png", "rating": "", "tags": ""}], ID_COLUMNS)
    faces.make_faces(tmp_path / "ids.tsv", tmp_path / "c", tmp_path / "f.tsv", faces.FaceParams(enabled=False))
    (row,) = read_tsv(tmp_path / "f.tsv")
    assert (row["crop"], row["path"], row["status"]) == ("7-0", "whatever.png", "face")


def test_cascade_setup_errors_are_one_sentence(tmp_path, cascade_path):
    with pytest.raises(SetupError, match="does not exist"):
        faces.load_cascade(tmp_path / "nope.xml")
    bad = tmp_path / "bad.xml"
    bad.write_text("<opencv_storage></opencv_storage>")
    with pytest.raises(SetupError, match="sha256"):
        faces.load_cascade(bad)
    with pytest.raises(SetupError, match="could not load"):
        faces.load_cascade(bad, sha256=None)
    assert not faces.load_cascade(cascade_path).empty()


def test_manifest_is_byte_reproducible_with_broken_files(cascade_path, tiles, tmp_path):
    """Two runs on the same inputs write the same bytes: no object repr with a memory
    address (`<_io.BytesIO object at 0x...>`) may reach a detail cell."""
    junk = tmp_path / "junk.jpg"
    junk.write_text("not an image")
    trunc = tmp_path / "trunc.jpg"
    trunc.write_bytes(tiles[0].read_bytes()[:2000])
    rows = [{"id": 1, "path": str(tiles[0])}, {"id": 2, "path": str(junk)}, {"id": 3, "path": str(trunc)}]
    write_tsv(tmp_path / "ids.tsv", rows, ID_COLUMNS)
    faces.make_faces(tmp_path / "ids.tsv", tmp_path / "crops", tmp_path / "a.tsv", faces.FaceParams(),
                     cascade_path=cascade_path)
    # the second run in a process of its own, as Snakemake runs it: object addresses differ there
    subprocess.run([sys.executable, "-c", "import sys; from pathlib import Path; from ganflow import faces; "
                    "faces.make_faces(*map(Path, sys.argv[1:4]), faces.FaceParams(), cascade_path=Path(sys.argv[4]))",
                    tmp_path / "ids.tsv", tmp_path / "crops", tmp_path / "b.tsv", cascade_path], check=True)
    manifest = (tmp_path / "a.tsv").read_bytes()
    assert manifest == (tmp_path / "b.tsv").read_bytes()
    assert b" at 0x" not in manifest
    detail = {r["id"]: r for r in read_tsv(tmp_path / "a.tsv")}["2"]["detail"]
    assert detail == f"{junk}: not an image format PIL can read"


def test_exif_orientation_is_applied_before_detection(cascade_path, tadne_grid, tmp_path):
    """A photo-style JPEG stored sideways with EXIF orientation 6 yields the faces of the
    upright picture: same boxes, scores and crop pixels."""
    upright = Image.open(tadne_grid).convert("RGB").crop((0, 0, 1536, 1024))
    sideways = tmp_path / "sideways.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    upright.transpose(Image.Transpose.ROTATE_90).save(sideways, quality=95, exif=exif.tobytes())
    reference = tmp_path / "upright.png"  # the same decoded pixels, turned by hand and stored losslessly
    Image.open(sideways).convert("RGB").transpose(Image.Transpose.ROTATE_270).save(reference)
    write_tsv(tmp_path / "ids.tsv", [{"id": 1, "path": str(sideways)}, {"id": 2, "path": str(reference)}], ID_COLUMNS)
    faces.make_faces(tmp_path / "ids.tsv", tmp_path / "crops", tmp_path / "faces.tsv", faces.FaceParams(),
                     cascade_path=cascade_path)
    rows = read_tsv(tmp_path / "faces.tsv")
    found = {i: [(r["box"], r["score"], r["sha256"]) for r in rows if r["id"] == i] for i in ("1", "2")}
    assert len(found["2"]) >= 4 and all(r["status"] == "face" for r in rows)
    assert found["1"] == found["2"]


def test_an_empty_shard_is_no_error(cascade_path, tmp_path):
    write_tsv(tmp_path / "ids.tsv", [], ID_COLUMNS)
    counts = faces.make_faces(tmp_path / "ids.tsv", tmp_path / "crops", tmp_path / "faces.tsv", faces.FaceParams(),
                              cascade_path=cascade_path)
    assert counts == {"images": 0, "with_face": 0, "crops": 0}
    assert read_tsv(tmp_path / "faces.tsv") == []
