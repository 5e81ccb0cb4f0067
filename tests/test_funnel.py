"""Contact sheets a person can review: a sheet says when it shows only a sample, marks what
was dropped, and the duplicates sheet shows each dropped copy beside the one it duplicated."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image

from ganflow import funnel
from ganflow.contact import MARK, contact_sheet
from ganflow.tables import write_tsv

THUMB = 32


def _tiles(tmp_path, n: int) -> list[tuple[str, str]]:
    items = []
    for k in range(n):
        path = tmp_path / f"t{k}.png"
        Image.new("RGB", (40, 40), (20 * k % 256, 100, 200 - 10 * k % 200)).save(path)
        items.append((str(path), f"t{k}"))
    return items


def _orange_tiles(sheet: np.ndarray, cols: int, head: int, count: int) -> list[int]:
    """Indices of the tiles whose outline is the mark colour."""
    found = []
    for i in range(count):
        x, y = (i % cols) * THUMB, head + (i // cols) * (THUMB + 12)
        if (sheet[y, x:x + THUMB] == MARK).all(-1).mean() > 0.9:
            found.append(i)
    return found


def test_a_sampled_sheet_says_so_and_marks_what_it_is_told(tmp_path):
    items = _tiles(tmp_path, 10)
    contact_sheet(items, tmp_path / "all.png", thumb=THUMB, max_items=4, title="faces: 10")
    contact_sheet(items[:4], tmp_path / "four.png", thumb=THUMB, max_items=4, title="faces: 10")
    sampled, four = (np.asarray(Image.open(tmp_path / n)) for n in ("all.png", "four.png"))
    assert sampled.shape == four.shape
    assert not np.array_equal(sampled[:16], four[:16])  # the title says "4 of 10 shown"
    assert np.array_equal(sampled[16:], four[16:])  # the same first four thumbnails
    contact_sheet(items, tmp_path / "marked.png", thumb=THUMB, max_items=9, marked=range(2))
    marked = np.asarray(Image.open(tmp_path / "marked.png"))
    assert _orange_tiles(marked, 3, 16, 9) == [0, 1]  # under the title "9 of 10 shown"


def test_duplicates_sheet_pairs_each_copy_with_the_one_kept(tmp_path):
    items = _tiles(tmp_path, 6)
    crops = [f"c{k}" for k in range(6)]
    clean = tmp_path / "clean.tsv"
    write_tsv(clean, [{"crop": c, "id": c, "path": p, "verdict": "kept"} for c, (p, _) in zip(crops, items)],
              ["crop", "id", "path", "verdict"])
    dedupe = tmp_path / "dedupe.tsv"  # c0 kept with two copies (c1, c2), c3 kept with one (c4), c5 alone
    write_tsv(dedupe, [{"crop": "c0", "cluster": "c0", "keep": 1, "kind": "unique"},
                       {"crop": "c1", "cluster": "c0", "keep": 0, "kind": "exact"},
                       {"crop": "c2", "cluster": "c0", "keep": 0, "kind": "near"},
                       {"crop": "c3", "cluster": "c3", "keep": 1, "kind": "unique"},
                       {"crop": "c4", "cluster": "c3", "keep": 0, "kind": "near"},
                       {"crop": "c5", "cluster": "c5", "keep": 1, "kind": "unique"}],
              ["crop", "cluster", "keep", "kind"])
    empty = tmp_path / "empty.tsv"
    write_tsv(empty, [], ["id"])
    (tmp_path / "summary.json").write_text(json.dumps({"posts": 6, "selected": 6, "found": 6}))
    sheet = tmp_path / "dups.png"
    funnel.make_funnel(tmp_path / "summary.json", [], [clean], dedupe, [], [empty], tmp_path / "funnel.tsv",
                       {"duplicates": sheet}, thumb=THUMB, max_items=64)
    pixels = np.asarray(Image.open(sheet))
    cols = pixels.shape[1] // THUMB
    assert cols % 2 == 0  # a pair never wraps across rows
    head = 16
    rows = (pixels.shape[0] - head) // (THUMB + 12)
    assert cols * rows >= 6 > cols * (rows - 1)  # three pairs
    # kept copies plain, dropped copies outlined, each right after its kept one
    assert _orange_tiles(pixels, cols, head, 6) == [1, 3, 5]
    for slot, source in ((0, 0), (1, 1), (2, 0), (3, 2), (4, 3), (5, 4)):
        x, y = (slot % cols) * THUMB, head + (slot // cols) * (THUMB + 12)
        colour = np.asarray(Image.open(items[source][0]))[20, 20]
        assert np.abs(pixels[y + THUMB // 2, x + THUMB // 2].astype(int) - colour).max() < 8, (slot, source)


def test_sources_without_a_face_get_their_own_sheet(tmp_path):
    items = _tiles(tmp_path, 3)
    faces = tmp_path / "faces.tsv"
    write_tsv(faces, [{"crop": "", "id": "7", "source": items[0][0], "path": "", "status": "no_face"},
                      {"crop": "8-0", "id": "8", "source": items[1][0], "path": items[1][0], "status": "face"},
                      {"crop": "", "id": "9", "source": items[2][0], "path": "", "status": "no_face"}],
              ["crop", "id", "source", "path", "status"])
    empty = tmp_path / "empty.tsv"
    write_tsv(empty, [], ["crop", "verdict", "keep", "cluster", "kind", "reason"])
    (tmp_path / "summary.json").write_text(json.dumps({"posts": 3, "selected": 3, "found": 3}))
    sheets = {"no-face": tmp_path / "no-face.png", "faces": tmp_path / "faces.png"}
    table = funnel.make_funnel(tmp_path / "summary.json", [faces], [empty], empty, [], [empty],
                               tmp_path / "funnel.tsv", sheets, thumb=THUMB)
    assert {"stage": "with_face", "count": "", "dropped_reason": "no_face", "dropped": 2} in table
    no_face, found = (np.asarray(Image.open(p)) for p in sheets.values())
    assert no_face.shape[1] == 2 * THUMB and found.shape[1] == THUMB  # two sources, one face
    colour = np.asarray(Image.open(items[2][0]))[20, 20]  # the second no-face source, second tile
    assert np.abs(no_face[16 + THUMB // 2, THUMB + THUMB // 2].astype(int) - colour).max() < 8


def test_faces_beyond_max_faces_and_crowded_images_are_counted_and_shown(tmp_path):
    """A face beyond faces.max_faces is a loss of the crops step, with a sheet of its own; an
    image that faces.solo drops is a loss of the with_face step."""
    items = _tiles(tmp_path, 5)
    faces = tmp_path / "faces.tsv"
    write_tsv(faces, [{"crop": "7-0", "id": "7", "source": "s7", "path": items[0][0], "status": "face"},
                      {"crop": "7-1", "id": "7", "source": "s7", "path": items[1][0], "status": "face"},
                      {"crop": "7-2", "id": "7", "source": "s7", "path": items[2][0], "status": "over_max_faces"},
                      {"crop": "7-3", "id": "7", "source": "s7", "path": items[3][0], "status": "over_max_faces"},
                      {"crop": "", "id": "8", "source": items[4][0], "path": "", "status": "not_solo"},
                      {"crop": "", "id": "9", "source": items[4][0], "path": "", "status": "no_face"}],
              ["crop", "id", "source", "path", "status"])
    empty = tmp_path / "empty.tsv"
    write_tsv(empty, [], ["crop", "verdict", "keep", "cluster", "kind", "reason"])
    (tmp_path / "summary.json").write_text(json.dumps({"posts": 3, "selected": 3, "found": 3}))
    sheet = tmp_path / "over-max-faces.png"
    table = funnel.make_funnel(tmp_path / "summary.json", [faces], [empty], empty, [], [empty],
                               tmp_path / "funnel.tsv", {"over-max-faces": sheet}, thumb=THUMB)
    steps = {(r["stage"], r["dropped_reason"]): r["count"] if r["count"] != "" else r["dropped"] for r in table}
    assert steps[("with_face", "")] == 1 and steps[("crops", "")] == 2
    assert steps[("with_face", "not_solo")] == 1 and steps[("with_face", "no_face")] == 1
    assert steps[("crops", "over_max_faces")] == 2 and ("with_face", "over_max_faces") not in steps
    # both units at each stage: one picture with four faces found, two of them cropped
    units = {r["stage"]: (r["images"], r["faces"]) for r in table if not r["dropped_reason"]}
    assert units["found"] == (3, "") and units["with_face"] == (1, 4) and units["crops"] == (1, 2)
    assert units["clean"] == (0, 0)
    pixels = np.asarray(Image.open(sheet))
    assert pixels.shape[1] == 2 * THUMB  # the two dropped faces
    for slot, source in ((0, 2), (1, 3)):
        colour = np.asarray(Image.open(items[source][0]))[20, 20]
        assert np.abs(pixels[16 + THUMB // 2, slot * THUMB + THUMB // 2].astype(int) - colour).max() < 8


def test_each_tile_says_which_file_it_is_and_the_overview_shows_it_as_a_tooltip(tmp_path):
    """A tile's drawn label is as wide as the tile (its end: ids and names differ there); the
    full label and file travel in the PNG, and the overview turns them into tooltips."""
    from ganflow import report
    from ganflow.contact import TILES_KEY, short_label

    items = [(path, f"sub_My_Photo_{k}-0") for k, (path, _) in enumerate(_tiles(tmp_path, 3))]
    contact_sheet(items, tmp_path / "sheet.png", thumb=THUMB, title="faces: 3")
    tiles = json.loads(Image.open(tmp_path / "sheet.png").info[TILES_KEY])
    assert [t["label"] for t in tiles] == [label for _, label in items]
    assert [t["path"] for t in tiles] == [path for path, _ in items]
    assert tiles[1]["box"] == [THUMB, 16, 2 * THUMB, 16 + THUMB + 12]
    assert short_label("sub_My_Photo_1-0", 5) == "~_1-0" and short_label("12-0", 5) == "12-0"
    write_tsv(tmp_path / "funnel.tsv", [], ["stage", "count", "share", "detail"])
    report.overview_page(tmp_path / "overview.html", title="t", funnel_tsv=tmp_path / "funnel.tsv",
                         sections=[("Contact sheets", [tmp_path / "sheet.png"])])
    page = (tmp_path / "overview.html").read_text()
    for k in range(3):
        assert f'title="sub_My_Photo_{k}-0: t{k}.png"' in page
    assert 'usemap="#tiles-sheet"' in page and '<map name="tiles-sheet">' in page
