"""faces: the cascade on real machine-generated anime art, crop geometry, bad input rows."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import imagehash
import numpy as np
import pytest
from PIL import Image

from ganflow import clean, faces
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


@pytest.fixture(scope="module")
def crowd(tadne_grid, tmp_path_factory):
    """Six tiles of the grid (3 x 2) as one lossless picture: a crowd of faces."""
    path = tmp_path_factory.mktemp("crowd") / "crowd.png"
    Image.open(tadne_grid).convert("RGB").crop((0, 0, 1536, 1024)).save(path)
    return path


def _faces(tmp_path, cascade_path, paths, **params):
    write_tsv(tmp_path / "ids.tsv", [{"id": name, "path": str(p)} for name, p in paths.items()], ID_COLUMNS)
    faces.make_faces(tmp_path / "ids.tsv", tmp_path / "crops", tmp_path / "faces.tsv", faces.FaceParams(**params),
                     cascade_path=cascade_path)
    return read_tsv(tmp_path / "faces.tsv")


def test_faces_beyond_max_faces_are_rows_with_their_crops(cascade_path, crowd, tmp_path):
    """The faces max_faces leaves out are counted, not lost: a row each with box, score and
    a crop to look at, ranked below every kept face, and never judged by clean."""
    every = _faces(tmp_path / "all", cascade_path, {"crowd": crowd}, max_faces=100)
    rows = _faces(tmp_path / "two", cascade_path, {"crowd": crowd}, max_faces=2)
    assert len(every) >= 4 and all(r["status"] == "face" for r in every)
    kept = [r for r in rows if r["status"] == "face"]
    over = [r for r in rows if r["status"] == "over_max_faces"]
    assert len(kept) == 2 and len(over) == len(every) - 2
    assert min(float(r["score"]) for r in kept) >= max(float(r["score"]) for r in over)
    # the same detections either way, the dropped ones numbered after the kept ones
    assert [(r["crop"], r["box"], r["score"], r["sha256"]) for r in rows] == \
        [(r["crop"], r["box"], r["score"], r["sha256"]) for r in every]
    src = np.asarray(Image.open(crowd))
    for k, r in enumerate(over, start=3):
        x, y, w, h = map(int, r["box"].split(","))
        assert np.array_equal(np.asarray(Image.open(r["path"])), src[y:y + h, x:x + w])
        assert r["detail"] == f"face {k} of {len(every)} by score; faces.max_faces is 2"
        assert r["face_box"] and r["source_size"] == "1536x1024"
        centre = Image.open(crowd).crop((77, 51, 77 + 1382, 51 + 922))  # 90% of each side, centred
        assert (r["source_phash"], r["source_centre_phash"]) == (str(imagehash.phash(Image.open(crowd))),
                                                                 str(imagehash.phash(centre)))
        fx, fy, fw, fh = map(int, r["face_box"].split(","))
        g = round(fw * 0.1)  # the face, whatever the framing: its box grown by a tenth
        face = src[max(fy - g, 0):fy + fh + g, max(fx - g, 0):fx + fw + g]
        assert r["face_phash"] == str(imagehash.phash(Image.fromarray(face)))
        assert r["face_rgb"] == ",".join(str(round(v)) for v in face.reshape(-1, 3).mean(axis=0))
    clean.make_clean(tmp_path / "two/faces.tsv", tmp_path / "clean.tsv", clean.CleanParams())
    assert sorted(r["crop"] for r in read_tsv(tmp_path / "clean.tsv")) == ["crowd-0", "crowd-1"]


def test_solo_drops_images_with_several_faces(cascade_path, crowd, tiles, tmp_path):
    rows = _faces(tmp_path, cascade_path, {"crowd": crowd, "one": tiles[1]}, solo=True)
    by_id = {}
    for r in rows:
        by_id.setdefault(r["id"], []).append(r)
    (crowd_row,) = by_id["crowd"]
    assert crowd_row["status"] == "not_solo" and crowd_row["crop"] == "" and crowd_row["path"] == ""
    n = len(_faces(tmp_path / "all", cascade_path, {"crowd": crowd}, max_faces=100))
    assert crowd_row["detail"] == f"{n} faces found; faces.solo keeps images with one"
    assert [r["status"] for r in by_id["one"]] == ["face"]
    assert sorted(p.name for p in (tmp_path / "crops").iterdir()) == ["one-0.png"]


def _reference_crop_box(box, margin, square, width, height):
    """crop_box as it was before framings existed, verbatim: the face framing must not move a pixel."""
    x, y, w, h = box
    cx, cy = x + w / 2, y + h / 2
    bw, bh = w * (1 + 2 * margin), h * (1 + 2 * margin)
    if square:
        bw = bh = max(bw, bh)
    bw, bh = min(bw, width), min(bh, height)
    if square:
        bw = bh = min(bw, bh)
    x0 = int(round(min(max(cx - bw / 2, 0), width - bw)))
    y0 = int(round(min(max(cy - bh / 2, 0), height - bh)))
    return x0, y0, int(round(bw)), int(round(bh))


def test_face_framing_is_exactly_the_old_crop_box():
    rng = np.random.default_rng(0)
    for _ in range(20000):
        width, height = (int(v) for v in rng.integers(20, 3000, 2))
        w = int(rng.integers(1, width + 1))
        h = int(rng.integers(1, height + 1))
        box = (int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1)), w, h)
        margin = float(rng.choice([0.0, 0.1, 0.25, 0.3, 0.5, 1.0, rng.uniform(0, 2)]))
        square = bool(rng.integers(2))
        assert faces.crop_box(box, margin, square, width, height, "face") == \
            _reference_crop_box(box, margin, square, width, height), (box, margin, square, width, height)


@pytest.fixture(scope="module")
def canvases(tadne_grid, tmp_path_factory):
    """Tiles with one face each, pasted onto 1024px canvases: room around every head."""
    out = tmp_path_factory.mktemp("canvases")
    grid = Image.open(tadne_grid).convert("RGB")
    paths = {}
    for k in (2, 9, 12, 14, 20, 26, 31, 35):
        r, c = divmod(k, 6)
        canvas = Image.new("RGB", (1024, 1024), (240, 236, 232))
        canvas.paste(grid.crop((c * 512, r * 512, c * 512 + 512, r * 512 + 512)), (256, 256))
        paths[f"tile{k}"] = out / f"tile{k}.png"
        canvas.save(paths[f"tile{k}"])
    return paths


def test_portrait_framing_has_room_above_the_head_and_below_the_chin(cascade_path, canvases, tmp_path):
    face = {r["crop"]: r for r in _faces(tmp_path / "face", cascade_path, canvases) if r["status"] == "face"}
    portrait = {r["crop"]: r for r in _faces(tmp_path / "portrait", cascade_path, canvases, framing="portrait")
                if r["status"] == "face"}
    assert len(portrait) >= 6 and portrait.keys() == face.keys()
    for crop, r in portrait.items():
        bx, by, bw, bh = map(int, r["box"].split(","))
        fx, fy, fw, fh = map(int, r["face_box"].split(","))
        assert r["face_box"] == face[crop]["face_box"]  # one detection, two framings
        assert bw == bh and bx <= fx and by <= fy and fx + fw <= bx + bw and fy + fh <= by + bh
        above, below = fy - by, by + bh - (fy + fh)
        assert above > below > 0.3 * fh, (crop, above, below)
        _, face_y, face_side, _ = map(int, face[crop]["box"].split(","))
        assert fy - face_y < above and face_side < bw  # more room than the face framing gives
        src = np.asarray(Image.open(r["source"]).convert("RGB"))[by:by + bh, bx:bx + bw]
        assert np.array_equal(np.asarray(Image.open(r["path"])), src)


def test_framing_sheet_in_docs_is_current(tmp_path):
    """docs/framing.png is what docs/framing_sheet.py makes from this code: two rows (face,
    portrait) of the same faces. Changing a framing without rerunning the script fails here."""
    repo = Path(__file__).resolve().parents[1]
    subprocess.run([sys.executable, str(repo / "docs/framing_sheet.py"), str(tmp_path / "sheet.png")], check=True,
                   capture_output=True)
    made = Image.open(tmp_path / "sheet.png")
    shown = Image.open(repo / "docs/framing.png")
    assert np.array_equal(np.asarray(made.convert("RGB")), np.asarray(shown.convert("RGB"))), \
        "docs/framing.png is stale: run .venv/bin/python docs/framing_sheet.py"
    assert made.width % 112 == 0 and made.width // 112 >= 6 and made.height == 16 + 2 * (112 + 12)
    assert (repo / "docs/framing.png").stat().st_size < 200_000


def test_ids_that_are_not_file_names_never_become_paths(cascade_path, tiles, tmp_path):
    paths = {"../escape": tiles[1], "a/b": tiles[1], ".hidden": tiles[1], "x" * 81: tiles[1], "My_Photo.v2": tiles[1]}
    rows = _faces(tmp_path, cascade_path, paths)
    status = {r["id"]: r["status"] for r in rows}
    assert [k for k, v in status.items() if v == "bad_id"] == ["../escape", "a/b", ".hidden", "x" * 81]
    assert status["My_Photo.v2"] == "face"
    assert sorted(p.name for p in tmp_path.rglob("*.png")) == ["My_Photo.v2-0.png"]


def test_the_log_says_what_the_shard_did(cascade_path, crowd, tiles, tmp_path):
    """The rule's log holds a line a person can act on: counts, reasons and time per image."""
    from ganflow.runlog import logged

    junk = tmp_path / "junk.jpg"
    junk.write_text("not an image")
    flat = tmp_path / "flat.png"
    Image.new("RGB", (300, 300), (200, 180, 170)).save(flat)
    write_tsv(tmp_path / "0007.tsv", [{"id": "crowd", "path": str(crowd)}, {"id": "junk", "path": str(junk)},
                                      {"id": "flat", "path": str(flat)}, {"id": "one", "path": str(tiles[1])}],
              ID_COLUMNS)
    with logged(tmp_path / "faces.log"):
        faces.make_faces(tmp_path / "0007.tsv", tmp_path / "crops", tmp_path / "faces.tsv",
                         faces.FaceParams(max_faces=2), cascade_path=cascade_path)
    text = (tmp_path / "faces.log").read_text()
    over = sum(r["status"] == "over_max_faces" for r in read_tsv(tmp_path / "faces.tsv"))
    assert over >= 2
    line = next(line for line in text.splitlines() if "ganflow.faces: faces 0007:" in line)  # not the progress
    assert "4 images read in " in line and " s/image), framing face: " in line
    assert f"{over + 3} faces found, 2 images with a kept face, 3 crops" in line
    assert f"not kept: no_face 1, over_max_faces {over}, undecodable 1" in line


def _iou(a, b) -> float:
    x0, y0 = max(a[0], b[0]), max(a[1], b[1])
    x1, y1 = min(a[0] + a[2], b[0] + b[2]), min(a[1] + a[3], b[1] + b[3])
    inter = max(x1 - x0, 0) * max(y1 - y0, 0)
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


@pytest.fixture(scope="module")
def big_originals(tadne_grid, tmp_path_factory):
    """Large 4:3 pictures (1600-4000 px wide) with two one-face tiles of the grid each, scaled
    to a quarter to nearly half of the width: the kind of original detect_side shrinks."""
    out = tmp_path_factory.mktemp("big")
    grid = Image.open(tadne_grid).convert("RGB")
    tiles = iter((2, 9, 12, 20, 26, 31, 35, 9))
    paths = {}
    for width, share in ((1600, 0.4), (2400, 0.3), (3200, 0.35), (4000, 0.25)):
        height, side = width * 3 // 4, int(width * share)
        canvas = Image.new("RGB", (width, height), (238, 233, 228))
        for j in range(2):
            r, c = divmod(next(tiles), 6)
            tile = grid.crop((c * 512, r * 512, c * 512 + 512, r * 512 + 512)).resize((side, side), Image.LANCZOS)
            canvas.paste(tile, (j * width // 2 + (width // 2 - side) // 2, (height - side) // 2))
        paths[f"w{width}"] = out / f"w{width}.jpg"
        canvas.save(paths[f"w{width}"], quality=92)
    return paths


def test_big_originals_are_searched_small_and_find_the_full_size_faces(cascade_path, big_originals, tmp_path):
    """Searching a shrunk copy finds the faces a full-size search finds, at the same places
    (boxes in the original's coordinates), and the crops are the original's own pixels."""
    cascade = faces.load_cascade(cascade_path)
    for name, path in big_originals.items():
        rgb = np.asarray(Image.open(path).convert("RGB"))
        assert faces.detect_scale(rgb.shape[1], rgb.shape[0], faces.FaceParams()) < 0.7, name
        full = faces.detect(cascade, rgb, faces.FaceParams(detect_side=None))
        small = faces.detect(cascade, rgb, faces.FaceParams())
        assert len(full) == len(small) == 2, (name, full, small)
        for box in full:
            assert max(_iou(box, other) for other in small) > 0.75, (name, box, small)
    rows = _faces(tmp_path, cascade_path, {"w4000": big_originals["w4000"]})
    src = np.asarray(Image.open(big_originals["w4000"]).convert("RGB"))
    assert [r["status"] for r in rows] == ["face", "face"]
    for r in rows:  # the last picture's (w4000) full-size boxes, as the manifest has them
        face_box = tuple(map(int, r["face_box"].split(",")))
        assert max(_iou(face_box, box[:4]) for box in full) > 0.75, (face_box, full)
        x, y, w, h = map(int, r["box"].split(","))
        assert np.array_equal(np.asarray(Image.open(r["path"])), src[y:y + h, x:x + w])


def test_the_smallest_face_searched_grows_with_a_shrunk_picture(cascade_path, tmp_path):
    """A face smaller than the cascade's window on the shrunk copy cannot be found: the
    no_face row says which sizes were searched, so a person can lower detect_side."""
    cascade = faces.load_cascade(cascade_path)
    p = faces.FaceParams(min_size=50, detect_side=1000)
    assert faces.min_face(cascade, 800, 600, p) == 50
    assert faces.min_face(cascade, 4000, 3000, p) == 96  # the 24 px window, 4x
    assert faces.min_face(cascade, 4000, 3000, faces.FaceParams(min_size=200, detect_side=1000)) == 200
    assert faces.min_face(cascade, 4000, 3000, faces.FaceParams(min_size=50, detect_side=None)) == 50
    flat = tmp_path / "flat.png"
    Image.new("RGB", (3000, 2000), (200, 180, 170)).save(flat)
    (row,) = _faces(tmp_path, cascade_path, {"flat": flat}, detect_side=1000)
    assert (row["status"], row["detail"]) == ("no_face", "3000x2000, searched for faces of 72 px and up")
    with pytest.raises(ValueError, match="detect_side"):
        faces.FaceParams(detect_side=0)


@pytest.fixture(scope="module")
def huge_faces(tadne_grid, tmp_path_factory):
    """A 4000x3000 JPEG with two one-face tiles of the grid at 1800 px: crops far longer than
    max_crop_side, in a picture whose hashes are taken of a box-reduced copy."""
    grid = Image.open(tadne_grid).convert("RGB")
    canvas = Image.new("RGB", (4000, 3000), (238, 233, 228))
    for j, k in enumerate((12, 26)):
        r, c = divmod(k, 6)
        tile = grid.crop((c * 512, r * 512, c * 512 + 512, r * 512 + 512)).resize((1800, 1800), Image.LANCZOS)
        canvas.paste(tile, (100 + j * 2000, 600))
    path = tmp_path_factory.mktemp("huge") / "huge.jpg"
    canvas.save(path, quality=92)
    return path


def test_crops_longer_than_max_crop_side_are_stored_shrunk(cascade_path, huge_faces, tmp_path):
    """max_crop_side changes only the stored pixels: the same faces, boxes (in the original's
    coordinates) and scores as full-size crops, each crop the full-size one area-shrunk to
    the longest side; clean then keeps them."""
    full = _faces(tmp_path / "full", cascade_path, {"huge": huge_faces}, max_crop_side=None)
    capped = _faces(tmp_path / "capped", cascade_path, {"huge": huge_faces}, max_crop_side=600)
    assert [r["status"] for r in capped] == ["face", "face"]
    keys = ("crop", "box", "face_box", "score", "source_size", "source_phash", "face_phash", "face_rgb")
    assert [[r[k] for k in keys] for r in capped] == [[r[k] for k in keys] for r in full]
    for small, big in zip(capped, full):
        big_img = Image.open(big["path"])
        assert big_img.size[0] == int(big["box"].split(",")[2]) > 900
        shrunk = np.asarray(big_img.resize((600, 600), Image.BOX), dtype=np.int16)
        got = np.asarray(Image.open(small["path"]), dtype=np.int16)
        assert got.shape == (600, 600, 3) and np.abs(got - shrunk).mean() < 1.0
    clean.make_clean(tmp_path / "capped/faces.tsv", tmp_path / "clean.tsv", clean.CleanParams())
    assert [(r["verdict"], r["width"]) for r in read_tsv(tmp_path / "clean.tsv")] == [("kept", "600")] * 2
    # a 4000x3000 picture's hashes come from a copy box-reduced 3x: at most a bit or two from exact
    exact = imagehash.phash(Image.open(huge_faces))
    assert exact - imagehash.hex_to_hash(full[0]["source_phash"]) <= 2
    with pytest.raises(ValueError, match="max_crop_side"):
        faces.FaceParams(max_crop_side=0)


def test_fetch_cascade_keeps_only_a_file_with_the_pinned_sha256(tmp_path: Path, cascade_path: Path) -> None:
    """The download (a file:// URL here, no internet) lands only when its sha256 matches."""
    url = cascade_path.resolve().as_uri()
    got = faces.fetch_cascade(tmp_path / "res" / "cascade.xml", url=url)
    assert got.read_bytes() == cascade_path.read_bytes()
    with pytest.raises(SetupError, match="expected 0{64}; replace the file"):
        faces.fetch_cascade(tmp_path / "bad.xml", url=url, sha256="0" * 64)
    with pytest.raises(SetupError, match="could not download the face cascade from .*; download it by hand"):
        faces.fetch_cascade(tmp_path / "missing.xml", url=(tmp_path / "nowhere.xml").as_uri())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["res"]  # nothing half-written left behind
