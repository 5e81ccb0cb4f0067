"""select: both Danbooru metadata formats, filters, bad lines, folder sources, sharding."""

from __future__ import annotations

import json
import lzma
import tarfile
from pathlib import Path

from ganflow import ids
from ganflow.tables import read_tsv


def _post_2018(i, rating="s", tags=("1girl",), ext="jpg"):
    return {"id": str(i), "rating": rating, "file_ext": ext,
            "tags": [{"id": str(n), "name": t, "category": "0"} for n, t in enumerate(tags)]}


def _post_2021(i, rating="s", tags=("1girl",), ext="png"):
    return {"id": i, "rating": rating, "file_ext": ext, "tag_string": " ".join(tags)}


def _mirror(root: Path, posts: list[dict], files: list[dict] | None = None) -> None:
    for p in files if files is not None else posts:
        i = int(p["id"])
        f = root / "original" / f"{i % 1000:04d}" / f"{i}.{p['file_ext']}"
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(b"x")


def test_both_formats_filters_and_rejections(tmp_path):
    good = [_post_2018(1001, tags=("1girl", "blue_eyes")), _post_2018(2002, rating="q"),
            _post_2018(3, tags=("1boy",)), _post_2021(4004, tags=("1girl", "solo")),
            _post_2021(5, rating="e"), _post_2021(7, rating="g", tags=("1girl", "monochrome"))]
    _mirror(tmp_path, good)
    lines = [json.dumps(p) for p in good[:3]]
    lines += ['{"id": "12", "rating": "s", "file_ext": "jpg", "tags": [',      # broken JSON
              json.dumps(_post_2018("abc")),                                   # non-integer id
              json.dumps(_post_2018(13, ext="../../etc/passwd")),              # path traversal
              json.dumps(_post_2018(14, ext="jpg/../../x")),
              json.dumps(_post_2018(15, ext="swf")),                           # not an image
              json.dumps(_post_2018(16)),                                      # file missing
              json.dumps(_post_2018(1001)),                                    # duplicate id
              "[1, 2]"]
    (tmp_path / "a.json").write_text("\n".join(lines) + "\n")
    with lzma.open(tmp_path / "b.json.xz", "wt") as fh:
        fh.write("\n".join(json.dumps(p) for p in good[3:]) + "\n")

    sel = ids.select_danbooru(tmp_path, [tmp_path / "a.json", tmp_path / "b.json.xz"],
                              ids.TagFilter.from_config({"ratings": ["s", "g"], "all_of": ["1girl"],
                                                         "none_of": ["monochrome"]}))
    kept = sorted(r["id"] for r in sel.rows)
    assert kept == [1001, 4004]
    reasons = sorted(r["reason"] for r in sel.rejected)
    assert reasons == sorted(["malformed_json", "bad_id", "bad_file_ext", "bad_file_ext",
                              "not_an_image_ext", "missing_file", "duplicate_id", "malformed_json"])
    assert sel.counts["filtered:rating_q"] == 1 and sel.counts["filtered:rating_e"] == 1
    assert sel.counts["filtered:tags_all_of"] == 1 and sel.counts["filtered:tags_none_of"] == 1
    assert sel.counts["posts"] == len(lines) + 3
    # every post is accounted for: kept, filtered or rejected
    filtered = sum(v for k, v in sel.counts.items() if k.startswith("filtered:"))
    assert len(sel.rows) + filtered + len(sel.rejected) == sel.counts["posts"]
    row = next(r for r in sel.rows if r["id"] == 4004)
    assert row["tags"] == "1girl solo" and row["path"].endswith("original/0004/4004.png")


def test_json_array_and_tarball(tmp_path):
    posts = [_post_2018(21), _post_2018(22)]
    _mirror(tmp_path, posts)
    (tmp_path / "arr.json").write_text(json.dumps(posts))
    member = tmp_path / "2019.json"
    member.write_text("\n".join(json.dumps(p) for p in [_post_2021(23, ext="jpg")]))
    _mirror(tmp_path, [_post_2021(23, ext="jpg")])
    with tarfile.open(tmp_path / "meta.tar.xz", "w:xz") as tar:
        tar.add(member, arcname="metadata/2019.json")
    sel = ids.select_danbooru(tmp_path, [tmp_path / "arr.json", tmp_path / "meta.tar.xz"], ids.TagFilter())
    assert sorted(r["id"] for r in sel.rows) == [21, 22, 23]


def test_write_selection_shards_every_row_once(tmp_path):
    posts = [_post_2018(i) for i in (1, 2, 5, 1000, 1003, 999)]
    _mirror(tmp_path, posts)
    (tmp_path / "m.json").write_text("\n".join(json.dumps(p) for p in posts))
    sel = ids.select_danbooru(tmp_path, [tmp_path / "m.json"], ids.TagFilter())
    counts = ids.write_selection(sel, tmp_path / "ids", shards=4)
    files = sorted((tmp_path / "ids").glob("0*.tsv"))
    assert [f.stem for f in files] == ["0000", "0001", "0002", "0003"]
    seen = []
    for f in files:
        for row in read_tsv(f):
            assert int(row["id"]) % 4 == int(f.stem)
            seen.append(int(row["id"]))
    assert sorted(seen) == sorted(int(p["id"]) for p in posts)
    assert json.loads((tmp_path / "ids" / "summary.json").read_text())["found"] == 6 == counts["found"]


def test_folder_source_stable_ids_and_sidecar_tags(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    for rel in ("x.png", "a/y.jpg", "a/b/z.webp", "a/notes.md"):
        (tmp_path / rel).write_bytes(b"x")
    (tmp_path / "a" / "y.txt").write_text("1girl, smile\nred_hair")
    sel = ids.select_folder(tmp_path, ids.TagFilter.from_config({"any_of": ["smile", "1boy"]}))
    assert [r["path"] for r in sel.rows] == [str(tmp_path / "a" / "y.jpg")]
    assert sel.rows[0]["tags"] == "1girl red_hair smile"
    assert sel.rows[0]["id"] == ids.folder_id("a/y.jpg") > 0
    assert [r["reason"] for r in sel.rejected] == ["not_an_image_ext"]
    assert sel.counts["filtered:tags_any_of"] == 2
    # ids depend on the relative path only, not on where the folder lives
    moved = tmp_path.parent / (tmp_path.name + "-moved")
    tmp_path.rename(moved)
    again = ids.select_folder(moved, ids.TagFilter())
    assert ids.folder_id("a/y.jpg") in {r["id"] for r in again.rows}
