"""select: both Danbooru metadata formats, filters, bad lines and files, folder sources, sharding,
and the setup errors of a selection that ends up empty."""

from __future__ import annotations

import errno
import hashlib
import json
import lzma
import os
import signal
import tarfile
from collections import Counter
from pathlib import Path

import pytest

from ganflow import ids, names
from ganflow.runlog import SetupError
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
    assert sel.rows[0]["id"] == "a_y"  # the relative path, readable
    assert [r["reason"] for r in sel.rejected] == ["not_an_image_ext"]
    assert sel.counts["filtered:tags_any_of"] == 2
    # ids depend on the relative path only, not on where the folder lives
    moved = tmp_path.parent / (tmp_path.name + "-moved")
    tmp_path.rename(moved)
    again = ids.select_folder(moved, ids.TagFilter())
    assert "a_y" in {r["id"] for r in again.rows}


def test_unknown_rating_passes_only_a_filter_that_allows_every_rating(tmp_path):
    posts = [_post_2021(1), _post_2021(2, rating=""), _post_2021(3, rating="x"), {**_post_2021(4)}]
    del posts[3]["rating"]
    _mirror(tmp_path, posts)
    (tmp_path / "m.json").write_text("\n".join(json.dumps(p) for p in posts))
    safe = ids.select_danbooru(tmp_path, [tmp_path / "m.json"], ids.TagFilter.from_config({"ratings": ["s", "g"]}))
    assert [r["id"] for r in safe.rows] == [1]
    assert safe.counts["filtered:rating_unknown"] == 3
    every = ids.select_danbooru(tmp_path, [tmp_path / "m.json"],
                                ids.TagFilter.from_config({"ratings": ["s", "g", "q", "e"]}))
    assert sorted(r["id"] for r in every.rows) == [1, 2, 3, 4]
    # a folder has no ratings at all: the ratings filter does not apply to it
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "a.png").write_bytes(b"x")
    assert len(ids.select_folder(tmp_path / "folder", ids.TagFilter()).rows) == 1


def test_bom_and_empty_lines(tmp_path):
    bom = "\ufeff"
    posts = [_post_2018(i) for i in (31, 32, 33, 34, 35)]
    _mirror(tmp_path, posts)
    (tmp_path / "lines.json").write_text(bom + json.dumps(posts[0]) + "\n\n" + json.dumps(posts[1]) + "\n  \n",
                                         encoding="utf-8")
    (tmp_path / "array.json").write_text(bom + json.dumps(posts[2:4]), encoding="utf-8")
    with lzma.open(tmp_path / "more.json.xz", "wt", encoding="utf-8") as fh:
        fh.write(bom + "\n" + json.dumps(posts[4]) + "\n")
    sel = ids.select_danbooru(tmp_path, [tmp_path / n for n in ("lines.json", "array.json", "more.json.xz")],
                              ids.TagFilter())
    assert sorted(r["id"] for r in sel.rows) == [31, 32, 33, 34, 35] and not sel.rejected
    assert sel.counts["posts"] == 5 and sel.counts["empty_lines"] == 3
    ids.write_selection(sel, tmp_path / "ids", shards=2)
    assert json.loads((tmp_path / "ids" / "summary.json").read_text())["empty_lines"] == 3


def _lock(monkeypatch, path: Path) -> None:
    """chmod 000, which stops nobody running as root (as tests often do): then opening the
    file is refused here as the kernel would refuse it to any other user."""
    path.chmod(0)
    if os.geteuid() != 0:
        return
    real_open = os.open

    def refusing_open(name, flags, *args, **kwargs):
        if Path(name) == path:
            raise PermissionError(errno.EACCES, "Permission denied", str(name))
        return real_open(name, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", refusing_open)


def _never_block():
    """A FIFO opened for reading would hang the test forever: fail it instead."""
    def stuck(signum, frame):
        raise AssertionError("select blocked (did it open a FIFO?)")
    signal.signal(signal.SIGALRM, stuck)
    signal.alarm(20)


def test_folder_bad_files_are_rows_and_only_readable_files_are_inputs(tmp_path, monkeypatch):
    root = tmp_path / "art"
    (root / "sub").mkdir(parents=True)
    (root / "good.png").write_bytes(b"x")
    (root / "sub" / "good.jpg").write_bytes(b"x")
    (root / "new\nline.png").write_bytes(b"x")
    (root / "tab\there.jpg").write_bytes(b"x")
    (root / "esc\x1b.png").write_bytes(b"x")
    (Path(os.fsdecode(bytes(root) + b"/latin1-\xe9.png"))).write_bytes(b"x")
    (root / "locked.png").write_bytes(b"x")
    _lock(monkeypatch, root / "locked.png")
    (root / "folder.png").mkdir()
    (root / "folder.png" / "inside.webp").write_bytes(b"x")
    (root / "gone.png").symlink_to(root / "nowhere.png")
    (root / "loop.png").symlink_to(root / "loop.png")
    os.mkfifo(root / "pipe.png")
    (root / "linked").symlink_to(root / "sub")  # a second way to a folder inside: listed once
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "far.png").write_bytes(b"x")
    (tmp_path / "elsewhere" / "back").symlink_to(root)
    (root / "more").symlink_to(tmp_path / "elsewhere")  # a folder outside: followed
    _never_block()
    try:
        sel = ids.select_folder(root, ids.TagFilter())
        ids.write_selection(sel, tmp_path / "ids", shards=2)
    finally:
        signal.alarm(0)
    assert sorted(r["path"] for r in sel.rows) == sorted(
        str(root / p) for p in ("good.png", "sub/good.jpg", "folder.png/inside.webp", "more/far.png"))
    rejected = {r["line"]: r for r in read_tsv(tmp_path / "ids" / "rejected.tsv")}
    assert {k: r["reason"] for k, r in rejected.items()} == {
        "new\\nline.png": "bad_file_name", "tab\\there.jpg": "bad_file_name", "esc\\x1b.png": "bad_file_name",
        "latin1-\\xe9.png": "bad_file_name", "locked.png": "unreadable", "folder.png": "not_a_file",
        "gone.png": "broken_link", "loop.png": "broken_link", "pipe.png": "not_a_file"}
    assert rejected["new\\nline.png"]["detail"].startswith("new\\nline.png (rename it")
    assert "a FIFO" in rejected["pipe.png"]["detail"] and "a directory" in rejected["folder.png"]["detail"]
    listed = [r["path"] for f in sorted((tmp_path / "ids").glob("0*.tsv")) for r in read_tsv(f)]
    assert sorted(listed) == sorted(r["path"] for r in sel.rows)
    assert sel.counts["posts"] == len(sel.rows) + len(sel.rejected)


def test_danbooru_bad_files_are_rows(tmp_path, monkeypatch):
    posts = [_post_2018(i) for i in (1, 2, 3, 4, 5, 6)]
    _mirror(tmp_path, posts[:2])
    folder = tmp_path / "original" / "0003" / "3.jpg"
    folder.mkdir(parents=True)
    (tmp_path / "original" / "0004").mkdir()
    (tmp_path / "original" / "0004" / "4.jpg").symlink_to("/nonexistent/4.jpg")
    (tmp_path / "original" / "0005").mkdir()
    os.mkfifo(tmp_path / "original" / "0005" / "5.jpg")
    _lock(monkeypatch, tmp_path / "original" / "0002" / "2.jpg")
    (tmp_path / "m.json").write_text("\n".join(json.dumps(p) for p in posts))
    _never_block()
    try:
        sel = ids.select_danbooru(tmp_path, [tmp_path / "m.json"], ids.TagFilter())
    finally:
        signal.alarm(0)
    assert [r["id"] for r in sel.rows] == [1]
    assert {r["id"]: r["reason"] for r in sel.rejected} == {
        "2": "unreadable", "3": "not_a_file", "4": "broken_link", "5": "not_a_file", "6": "missing_file"}


def test_source_tree_sees_added_and_removed_entries_not_touches_or_edits(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.png").write_bytes(b"x")
    (tmp_path / "b.png").write_bytes(b"x")
    digests = [ids.source_tree(tmp_path, "folder")]
    os.utime(tmp_path / "sub" / "a.png", ns=(1, 1))  # touching or editing a file is no change here
    (tmp_path / "b.png").write_bytes(b"edited")
    assert ids.source_tree(tmp_path, "folder") == digests[0]
    (tmp_path / "sub" / "gone.png").symlink_to(tmp_path / "nowhere")  # deep in the tree
    digests.append(ids.source_tree(tmp_path, "folder"))
    (tmp_path / "b.png").unlink()
    digests.append(ids.source_tree(tmp_path, "folder"))
    (tmp_path / "sub" / "a.png").rename(tmp_path / "sub" / "c.png")
    digests.append(ids.source_tree(tmp_path, "folder"))
    assert len(set(digests)) == 4
    (tmp_path / "original" / "0001").mkdir(parents=True)  # a Danbooru source: only original/
    danbooru = ids.source_tree(tmp_path, "danbooru")
    (tmp_path / "c.png").write_bytes(b"x")
    assert ids.source_tree(tmp_path, "danbooru") == danbooru
    (tmp_path / "original" / "0001" / "1.png").write_bytes(b"x")
    assert ids.source_tree(tmp_path, "danbooru") != danbooru


def _counting_hashes(monkeypatch) -> list[str]:
    hashed: list[str] = []
    real = ids._file_entry
    monkeypatch.setattr(ids, "_file_entry", lambda path: hashed.append(path) or real(path))
    return hashed


def _shard(tmp_path: Path, names: list[str]) -> tuple[Path, Path, list[Path]]:
    files = [tmp_path / "src" / n for n in names]
    for i, f in enumerate(files):
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(b"image %d" % i)
    sel = ids.Selection(rows=[{"id": f.stem, "path": str(f), "rating": "", "tags": "", "key": 0} for f in files])
    ids.write_selection(sel, tmp_path / "ids", shards=1)
    return tmp_path / "ids" / "0000.tsv", tmp_path / "listing.tsv", files


def test_shard_content_follows_bytes_and_rehashes_a_touched_file_once(tmp_path, monkeypatch):
    ids_tsv, listing, files = _shard(tmp_path, ["a.png", "b.png", "c.png"])
    hashed = _counting_hashes(monkeypatch)
    first = ids.shard_content(ids_tsv, listing)
    assert len(hashed) == 3 and [r["sha256"] for r in read_tsv(listing)] == [
        hashlib.sha256(f.read_bytes()).hexdigest() for f in files]
    assert ids.shard_content(ids_tsv, listing) == first and len(hashed) == 3  # nothing changed: no hash
    os.utime(files[0], ns=(10**18, 10**18))
    written = listing.stat().st_mtime_ns
    assert ids.shard_content(ids_tsv, listing) == first and hashed[3:] == [str(files[0])]
    assert listing.stat().st_mtime_ns != written  # the touched file's new times are kept ...
    written = listing.stat().st_mtime_ns
    assert ids.shard_content(ids_tsv, listing) == first and len(hashed) == 4  # ... so it is hashed once
    assert listing.stat().st_mtime_ns == written
    files[1].write_bytes(b"edited")
    edited = ids.shard_content(ids_tsv, listing)
    assert edited != first and hashed[4:] == [str(files[1])]
    listing.write_bytes(b"\xff\x00 not a listing")  # a damaged listing is rebuilt, not trusted
    assert ids.shard_content(ids_tsv, listing) == edited and len(hashed) == 8


@pytest.mark.parametrize("serial_seconds", [float("inf"), 0.0])  # fast files: one thread; slow ones: a pool
def test_stale_files_are_hashed_once_each_into_their_own_entries_in_one_thread_or_many(tmp_path, monkeypatch,
                                                                                         serial_seconds):
    monkeypatch.setattr(ids, "HASH_PROBE", 4)
    monkeypatch.setattr(ids, "SERIAL_HASH_SECONDS", serial_seconds)
    names = [f"{k}.png" for k in range(40)]
    ids_tsv, listing, files = _shard(tmp_path, names)
    hashed = _counting_hashes(monkeypatch)
    ids.shard_content(ids_tsv, listing)
    assert sorted(hashed) == sorted(map(str, files))
    assert {r["path"]: r["sha256"] for r in read_tsv(listing)} == {
        str(f): hashlib.sha256(f.read_bytes()).hexdigest() for f in files}


def test_shard_content_sees_a_file_swapped_for_a_fifo_gone_or_locked_without_blocking(tmp_path, monkeypatch):
    ids_tsv, listing, files = _shard(tmp_path, ["a.png", "b.png"])
    digests = [ids.shard_content(ids_tsv, listing)]
    files[0].unlink()
    os.mkfifo(files[0])
    _never_block()
    try:
        digests.append(ids.shard_content(ids_tsv, listing))
    finally:
        signal.alarm(0)
    files[0].unlink()
    digests.append(ids.shard_content(ids_tsv, listing))
    assert digests[0] not in digests[1:]  # no readable content: the faces stage reports the file
    files[0].write_bytes(b"image 0")  # the same bytes again: the same content
    assert ids.shard_content(ids_tsv, listing) == digests[0]
    _lock(monkeypatch, files[1])  # chmod moves the ctime: rehashed, and now unreadable
    assert ids.shard_content(ids_tsv, listing) not in digests


def test_write_listings_hashes_only_new_or_changed_files(tmp_path, monkeypatch):
    root = tmp_path / "art"
    root.mkdir()
    for i in range(6):
        (root / f"{i}.png").write_bytes(b"x%d" % i)
    hashed = _counting_hashes(monkeypatch)
    sel = ids.select_folder(root, ids.TagFilter())
    ids.write_listings(sel, tmp_path / "sources", shards=3)
    assert len(hashed) == 6
    listings = {p.name: read_tsv(p) for p in sorted((tmp_path / "sources").glob("*.tsv"))}
    assert sorted(listings) == ["0000.tsv", "0001.tsv", "0002.tsv"]
    by_shard = {f"{shard}.tsv": [r["path"] for r in rows] for shard, rows in ids._by_shard(sel, 3).items()}
    assert {name: [r["path"] for r in rows] for name, rows in listings.items()} == by_shard
    (root / "new.png").write_bytes(b"new")
    (root / "0.png").write_bytes(b"edited")
    ids.write_listings(ids.select_folder(root, ids.TagFilter()), tmp_path / "sources", shards=2)
    assert sorted(hashed[6:]) == [str(root / "0.png"), str(root / "new.png")]
    assert sorted(p.name for p in (tmp_path / "sources").glob("*.tsv")) == ["0000.tsv", "0001.tsv"]


def test_an_empty_selection_is_a_setup_error_naming_the_key(tmp_path):
    with pytest.raises(SetupError, match=r"source\.root .*nope does not exist"):
        ids.select_folder(tmp_path / "nope", ids.TagFilter())
    (tmp_path / "empty").mkdir()
    with pytest.raises(SetupError, match=r"\(nothing\): found no post in source\.root .*empty"):
        ids.select_folder(tmp_path / "empty", ids.TagFilter())
    (tmp_path / "empty" / "a.png").write_bytes(b"x")
    with pytest.raises(SetupError, match=r"filtered:tags_all_of 1.*: the filters drop every post; loosen ids\.ratings"):
        ids.select_folder(tmp_path / "empty", ids.TagFilter(all_of=frozenset({"1girl"})))

    posts = [_post_2018(7), _post_2018(8, rating="e")]
    (tmp_path / "original").mkdir()
    (tmp_path / "m.json").write_text("\n".join(json.dumps(p) for p in posts))
    with pytest.raises(SetupError, match=r"no metadata file matches source\.metadata"):
        ids.select_danbooru(tmp_path, [], ids.TagFilter())
    with pytest.raises(SetupError, match=r"metadata file .*typo\.json cannot be read \(missing_file\); fix source\.metadata"):
        ids.select_danbooru(tmp_path, [tmp_path / "typo.json"], ids.TagFilter())
    with pytest.raises(SetupError, match=r"rejected:missing_file 1.*none of the 1 selected posts has a readable image "
                                         r"file; check source\.root"):
        ids.select_danbooru(tmp_path, [tmp_path / "m.json"], ids.TagFilter())
    (tmp_path / "blank.json").write_text("\n\n")
    with pytest.raises(SetupError, match=r"\(empty_lines 2\): found no post in source\.metadata"):
        ids.select_danbooru(tmp_path, [tmp_path / "blank.json"], ids.TagFilter())
    with pytest.raises(SetupError, match=r"source\.root .* has no original/ folder"):
        ids.select_danbooru(tmp_path / "empty", [tmp_path / "m.json"], ids.TagFilter())


def test_folder_ids_are_readable_file_names_and_unique():
    """An id is the relative path as a readable, file-name-safe slug; the hash of the path
    appears only where the slug alone would clash, overflow or say nothing."""
    long_name = "very long title " * 12 + "final.png"
    relatives = ["x.png", "a/y.jpg", "My Photo (1).png", "café/Ünïcode ★ 猫.png", "猫.png", "v1.2..final.png",
                 "a/b.png", "a_b.png", "A_B.png", "sub/x.jpg", "sub/x.png", long_name, "a/" + long_name,
                 "groups/まどか.jpg"]
    got = ids.folder_ids(relatives)
    digest = {r: hashlib.sha256(r.encode()).hexdigest()[:8] for r in relatives}
    assert got["x.png"] == "x" and got["a/y.jpg"] == "a_y" and got["My Photo (1).png"] == "My_Photo_1"
    assert got["café/Ünïcode ★ 猫.png"] == "cafe_Unicode" and got["v1.2..final.png"] == "v1.2.final"
    assert got["猫.png"] == digest["猫.png"]  # nothing readable is left: the hash alone
    # nothing readable of the file's own name: the folder alone would name it, so the hash too
    assert got["groups/まどか.jpg"] == f"groups_{digest['groups/まどか.jpg']}"
    # a/b, a_b and A_B slug alike (case-insensitive disks too), as do sub/x.jpg and sub/x.png
    for r in ("a/b.png", "a_b.png", "A_B.png"):
        assert got[r] == f"{r[0]}_{r[2]}_{digest[r]}"
    assert got["sub/x.jpg"] == f"sub_x_{digest['sub/x.jpg']}" and got["sub/x.png"] == f"sub_x_{digest['sub/x.png']}"
    for r in (long_name, "a/" + long_name):  # cut to the end (the file name), then the hash
        assert len(got[r]) == names.ID_MAX_LENGTH and got[r].endswith(f"title_final_{digest[r]}")
    assert len({i.lower() for i in got.values()}) == len(relatives)
    assert all(names.safe_id(i) for i in got.values())
    assert ids.folder_ids(reversed(relatives)) == got  # whatever the walk order


def test_a_suffixed_id_that_clashes_again_gets_a_longer_hash(monkeypatch):
    """'a b.png' slugs to 'a_b', which clashes with 'a_b.png'; a file literally named like the
    suffixed id then clashes with that, and the clash resolves with a longer hash."""
    first = ids.folder_ids(["a b.png", "a_b.png"])["a b.png"]
    got = ids.folder_ids(["a b.png", "a_b.png", first + ".png"])
    digest = hashlib.sha256(b"a b.png").hexdigest()
    assert got["a b.png"] == f"a_b_{digest[:16]}" and got[first + ".png"].startswith(first + "_")
    assert len({i.lower() for i in got.values()}) == 3


def test_safe_id_refuses_anything_that_is_not_a_plain_file_name():
    for bad in ("", "../x", "a/b", "a\\b", ".hidden", "-x", "a..b", "x" * 81, "a b", "é", "a\x00b"):
        assert not names.safe_id(bad), bad
    for good in ("1234567", "a_y", "My_Photo_1.v2", "_x", "x" * 80, "3fa9c2d1"):
        assert names.safe_id(good), good


def test_folder_shards_follow_a_path_hash_stable_and_balanced(tmp_path):
    """A folder file's shard is a hash of its relative path modulo the shards (as folder ids
    sharded before ids were readable): balanced, and unmoved when a clashing file arrives."""
    root = tmp_path / "art"
    (root / "sub").mkdir(parents=True)
    names = [f"sub/pic {i}.png" for i in range(400)]
    for name in names:
        (root / name).write_bytes(b"x")
    sel = ids.select_folder(root, ids.TagFilter())
    ids.write_selection(sel, tmp_path / "ids", shards=4)

    def shards() -> dict[str, tuple[str, str]]:
        out = {}
        for f in sorted((tmp_path / "ids").glob("0*.tsv")):
            for row in read_tsv(f):
                out[Path(row["path"]).relative_to(root).as_posix()] = (f.stem, row["id"])
        return out

    before = shards()
    assert before["sub/pic 7.png"][1] == "sub_pic_7"
    for name, (shard, _) in before.items():
        assert int(shard) == int(hashlib.sha256(name.encode()).hexdigest()[:15], 16) % 4
    sizes = Counter(shard for shard, _ in before.values())
    assert sorted(sizes) == ["0000", "0001", "0002", "0003"] and 70 < min(sizes.values()) <= max(sizes.values()) < 130
    (root / "sub_pic_7.png").write_bytes(b"x")  # slugs like sub/pic 7.png
    ids.write_selection(ids.select_folder(root, ids.TagFilter()), tmp_path / "ids", shards=4)
    after = shards()
    suffix = hashlib.sha256(b"sub/pic 7.png").hexdigest()[:8]
    assert after["sub/pic 7.png"] == (before["sub/pic 7.png"][0], f"sub_pic_7_{suffix}")
    assert {k: v for k, v in after.items() if k not in ("sub/pic 7.png", "sub_pic_7.png")} == \
        {k: v for k, v in before.items() if k != "sub/pic 7.png"}
