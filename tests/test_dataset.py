"""dataset: size against the sources, exact round trip, skips with reasons, keep lists, verify,
interrupted packing, deterministic order, and the training/ranking readers."""

from __future__ import annotations

import hashlib
import io
import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ganflow import dataset, records
from ganflow.imaging import load_srgb
from ganflow.runlog import SetupError
from ganflow.tables import read_tsv, write_tsv

IMAGE_COLUMNS = ["image", "id", "path", "source", "box", "width", "height", "format", "sha256", "upscale"]
RES = 64


@pytest.fixture(scope="module")
def tiles(tadne_grid) -> list[Image.Image]:
    """36 real illustrations at 64px, as the images stage would make them."""
    grid = Image.open(tadne_grid).convert("RGB")
    return [grid.crop((x, y, x + 512, y + 512)).resize((RES, RES), Image.LANCZOS)
            for y in range(0, 3072, 512) for x in range(0, 3072, 512)]


def _encode(img: Image.Image, fmt: str, subsampling: int = 2) -> bytes:
    """subsampling 0 is 4:4:4 (what the images stage writes), 2 is PIL's default 4:2:0."""
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=95, subsampling=subsampling) if fmt == "jpg" else img.save(buf, "PNG")
    return buf.getvalue()


def _row(root: Path, image: str, data: bytes, fmt: str = "jpg", size: int = RES) -> dict:
    path = root / "images" / "0000" / f"{image}.{fmt}"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    source_id = image.split("-")[0]
    return {"image": image, "id": source_id, "path": str(path), "source": f"mirror/original/{source_id}.png",
            "box": "10,20,300,300", "width": size, "height": size, "format": fmt,
            "sha256": hashlib.sha256(data).hexdigest(), "upscale": "none"}


def _manifests(root: Path, rows: list[dict]) -> list[Path]:
    """Split rows over two images manifests, as the images shards do."""
    paths = [root / "images" / "0000.tsv", root / "images" / "0001.tsv"]
    for k, path in enumerate(paths):
        write_tsv(path, rows[k::2], IMAGE_COLUMNS)
    return paths


def _sources(root: Path, tiles: list[Image.Image], formats=("jpg",)) -> tuple[list[Path], list[dict]]:
    rows = [_row(root, f"{100 + i}-0", _encode(t, formats[i % len(formats)], subsampling=i // 2 % 2 * 2),
                 formats[i % len(formats)]) for i, t in enumerate(tiles)]
    return _manifests(root, rows), rows


def test_packed_size_is_about_the_source_size(tmp_path, tiles):
    manifests, rows = _sources(tmp_path, tiles)
    meta = dataset.pack(manifests, tmp_path / "ds", shards=3, seed=0)
    source = sum(Path(r["path"]).stat().st_size for r in rows)
    packed = sum(f.stat().st_size for f in (tmp_path / "ds").iterdir())  # shards + dataset.json + skipped.tsv
    assert meta["count"] == len(tiles) and meta["source_bytes"] == source
    assert packed <= 1.05 * source, (packed, source)
    per_lod = sum(r * r * 3 for r in (64, 32, 16, 8, 4)) * len(tiles)
    assert per_lod > 3 * packed  # what the classic raw per-LOD format would have cost
    assert sorted(f.name for f in (tmp_path / "ds").iterdir()) == [
        "data-000-of-003.tfrecord", "data-001-of-003.tfrecord", "data-002-of-003.tfrecord",
        "dataset.json", "skipped.tsv"]
    assert meta["resolution"] == RES and meta["channels"] == 3 and meta["format"] == "jpg"
    assert sum(s["count"] for s in meta["shards"]) == len(tiles)
    assert read_tsv(tmp_path / "ds" / "skipped.tsv") == []


def test_round_trip_equals_load_srgb_of_the_sources(tmp_path, tiles):
    # JPEG is compared with PIL (load_srgb), the decoder every other stage uses: the reader asks
    # libjpeg for its accurate integer IDCT, which PIL uses too, so the pixels must match exactly
    # (TensorFlow's default fast IDCT would differ by a few levels).
    manifests, rows = _sources(tmp_path, tiles[:12], formats=("jpg", "png"))
    meta = dataset.pack(manifests, tmp_path / "ds", shards=2, seed=1)
    assert meta["format"] == "jpg+png"
    by_id = {r["image"]: r for r in rows}
    seen = []
    for ids, images in records.iterate_images(tmp_path / "ds", batch_size=5):
        assert images.dtype == np.uint8 and images.shape[1:] == (RES, RES, 3)
        for image_id, image in zip(ids, images):
            np.testing.assert_array_equal(image, np.asarray(load_srgb(by_id[image_id]["path"])))
            seen.append(image_id)
    assert seen == meta["ids"] and sorted(seen) == sorted(by_id)

    # the training reader interleaves shards, so compare as a multiset of exact images
    batches = list(records.training_dataset(tmp_path / "ds", RES, 4, shuffle_buffer=0, repeat=False))
    got = np.concatenate([b.numpy() for b in batches])
    assert got.dtype == np.float32 and got.shape == (12, RES, RES, 3)
    assert got.min() >= -1 and got.max() <= 1
    levels = (got + 1) * 127.5
    np.testing.assert_allclose(levels, np.round(levels), atol=1e-3)  # exact 8-bit values, just rescaled
    want = sorted(np.asarray(load_srgb(r["path"])).tobytes() for r in rows)
    assert sorted(np.round(levels).astype(np.uint8)[k].tobytes() for k in range(12)) == want


def test_bad_files_are_skipped_named_with_reasons(tmp_path, tiles, caplog):
    good = [_row(tmp_path, f"{i}-0", _encode(tiles[i], "jpg")) for i in range(3)]
    jpeg = _encode(tiles[5], "jpg")
    truncated = _row(tmp_path, "50-0", jpeg[: len(jpeg) // 2])
    garbage = _row(tmp_path, "51-0", b"this is not an image at all")
    missing = _row(tmp_path, "52-0", jpeg)
    Path(missing["path"]).unlink()
    changed = _row(tmp_path, "53-0", jpeg)
    Path(changed["path"]).write_bytes(_encode(tiles[6], "jpg"))
    small = _row(tmp_path, "54-0", _encode(tiles[7].resize((32, 32)), "jpg"), size=32)
    gray = _row(tmp_path, "55-0", _encode(tiles[8].convert("L"), "jpg"))
    empty = _row(tmp_path, "56-0", b"")
    manifests = _manifests(tmp_path, good + [truncated, garbage, missing, changed, small, gray, empty])
    with open(manifests[0], "a", encoding="utf-8") as fh:
        fh.write("57-0\tonly-two-cells\n")  # a malformed row

    with caplog.at_level(logging.WARNING, logger="ganflow.dataset"):
        meta = dataset.pack(manifests, tmp_path / "ds", shards=2, seed=0)
    assert meta["count"] == 3 and sorted(meta["ids"]) == ["0-0", "1-0", "2-0"]
    skipped = {r["image"]: r for r in read_tsv(tmp_path / "ds" / "skipped.tsv")}
    assert {k: v["reason"] for k, v in skipped.items()} == {
        "50-0": "truncated", "51-0": "undecodable", "52-0": "missing", "53-0": "sha256_mismatch",
        "54-0": "wrong_size", "55-0": "not_rgb", "56-0": "empty", "57-0": "malformed_row"}
    assert meta["skipped"] == 8
    for bad in (truncated, garbage, missing, changed, small, gray, empty):
        assert skipped[bad["image"]]["path"] == bad["path"]
        assert bad["path"] in caplog.text  # the log names the file, not just a count
    assert records.verify(tmp_path / "ds")["ok"]


def test_verbose_names_every_packed_file(tmp_path, tiles, caplog):
    manifests, rows = _sources(tmp_path, tiles[:3])
    with caplog.at_level(logging.INFO, logger="ganflow.dataset"):
        dataset.pack(manifests, tmp_path / "ds", shards=1, seed=0, verbose=True)
    packed = [r.getMessage() for r in caplog.records if r.getMessage().startswith("packed ")]
    assert all(any(r["path"] in m for m in packed) for r in rows)
    assert "packed 3 images" in caplog.text


def test_keep_list_restricts_and_names_unknown_ids(tmp_path, tiles):
    manifests, _ = _sources(tmp_path, tiles[:8])
    write_tsv(tmp_path / "keep.tsv", [{"image": i} for i in ("101-0", "104-0", "106-0", "999-0")], ["image"])
    meta = dataset.pack(manifests, tmp_path / "ds", keep=tmp_path / "keep.tsv", shards=2, seed=0)
    assert sorted(meta["ids"]) == ["101-0", "104-0", "106-0"]
    assert meta["excluded_by_keep"] == 5
    assert [(r["image"], r["reason"]) for r in read_tsv(tmp_path / "ds" / "skipped.tsv")] == [
        ("999-0", "not_in_manifest")]


def test_order_is_deterministic_per_seed(tmp_path, tiles):
    manifests, _ = _sources(tmp_path, tiles[:16])
    a = dataset.pack(manifests, tmp_path / "a", shards=3, seed=7)
    b = dataset.pack(list(reversed(manifests)), tmp_path / "b", shards=3, seed=7)
    c = dataset.pack(manifests, tmp_path / "c", shards=3, seed=8)
    assert a["ids"] == b["ids"] and a["ids"] != c["ids"] and sorted(a["ids"]) == sorted(c["ids"])
    assert a["ids"] != sorted(a["ids"])  # shuffled, not in id order
    # byte-identical output for identical input: nothing downstream reruns
    assert (tmp_path / "a" / "dataset.json").read_bytes() == (tmp_path / "b" / "dataset.json").read_bytes()


def test_packing_twice_in_two_processes_gives_the_same_bytes(tmp_path, tiles):
    """Protobuf map order differs between processes; the shards and dataset.json must not."""
    manifests, _ = _sources(tmp_path, tiles[:12])
    code = ("import sys; from pathlib import Path; from ganflow import dataset; "
            "dataset.pack(sys.argv[2:], Path(sys.argv[1]), shards=2, seed=0)")
    digests = []
    for n in range(2):
        out = tmp_path / f"pack{n}"
        env = {**os.environ, "PYTHONHASHSEED": str(n + 1)}
        subprocess.run([sys.executable, "-c", code, str(out), *map(str, manifests)], check=True, env=env)
        digests.append({p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(out.iterdir())})
    assert len(digests[0]) >= 3 and digests[0] == digests[1]


def test_verify_detects_a_tampered_shard(tmp_path, tiles):
    manifests, _ = _sources(tmp_path, tiles[:10])
    dataset.pack(manifests, tmp_path / "ds", shards=2, seed=0)
    report = records.verify(tmp_path / "ds")
    assert report == {"ok": True, "count": 10, "shards": 2, "problems": []}
    shard = tmp_path / "ds" / "data-001-of-002.tfrecord"
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, one byte changed
    shard.write_bytes(bytes(data))
    report = records.verify(tmp_path / "ds")
    assert not report["ok"]
    assert any(str(shard) in p and "sha256" in p for p in report["problems"])


def test_interrupted_packing_is_never_trusted(tmp_path, tiles, monkeypatch):
    manifests, _ = _sources(tmp_path, tiles[:10])
    out = tmp_path / "ds"
    dataset.pack(manifests, out, shards=2, seed=0)

    # a second run dies while writing its second shard
    real = dataset._example
    calls = {"n": 0}

    def dying(*args):
        calls["n"] += 1
        if calls["n"] == 7:
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(dataset, "_example", dying)
    with pytest.raises(KeyboardInterrupt):
        dataset.pack(manifests, out, shards=2, seed=0)
    monkeypatch.setattr(dataset, "_example", real)
    assert not (out / "dataset.json").exists()  # the old one went first, the new one never came
    assert (out / "data-000-of-002.tfrecord").exists()
    with pytest.raises(SetupError, match="no dataset.json"):
        records.training_dataset(out, RES, 2)

    # a SIGKILL leaves a temporary shard behind (nothing can clean it up then)
    leftover = out / ".data-001-of-002.tfrecord.x1y2.tmp.tfrecord"
    leftover.write_bytes(b"half a shard")
    meta = dataset.pack(manifests, out, shards=2, seed=0)
    assert not leftover.exists()
    leftover.write_bytes(b"half a shard")  # even if one reappears, only listed shards are read
    assert sum(len(ids) for ids, _ in records.iterate_images(out, 4)) == meta["count"] == 10
    assert records.verify(out)["ok"]

    # shards replaced behind dataset.json's back are refused
    (out / "data-000-of-002.tfrecord").write_bytes(b"x")
    with pytest.raises(SetupError, match="not the size"):
        records.iterate_images(out, 4).__next__()


def test_training_stream_is_a_pure_function_of_seed_and_position(tmp_path, tiles):
    """Each pass is a new permutation of the records (shuffled by default), and the stream
    begun at image n (start, as training resumes) is the whole stream less its
    first n images: a resumed run reads what the killed one would have read."""
    manifests, _ = _sources(tmp_path, tiles[:10])
    ds = tmp_path / "ds"
    meta = dataset.pack(manifests, ds, shards=3, seed=0)
    known = {image.tobytes(): i for ids, images in records.iterate_images(ds, 10) for i, image in zip(ids, images)}

    def order(stream, n: int) -> list[str]:
        out = []
        for batch in stream:
            out += [known[np.round((x + 1) * 127.5).astype(np.uint8).tobytes()] for x in batch.numpy()]
            if len(out) >= n:
                return out[:n]

    full = order(records.training_dataset(ds, RES, 3, shuffle_buffer=4, seed=5), 40)
    passes = [full[i:i + 10] for i in range(0, 40, 10)]
    assert all(sorted(p) == sorted(meta["ids"]) for p in passes)
    assert len({tuple(p) for p in passes}) == 4
    for n in (7, 23):
        assert order(records.training_dataset(ds, RES, 3, shuffle_buffer=4, seed=5, start=n), 40 - n) == full[n:]
    default = order(records.training_dataset(ds, RES, 3, seed=5), 20)
    assert default[:10] != meta["ids"] and default[:10] != default[10:]
    assert order(records.training_dataset(ds, RES, 3, seed=6), 10) != default[:10]


def test_training_reader_mirror_and_downscale(tmp_path, tiles):
    rows = [_row(tmp_path, f"{i}-0", _encode(t.resize((128, 128), Image.LANCZOS), "jpg"), size=128)
            for i, t in enumerate(tiles[:16])]
    manifests = _manifests(tmp_path, rows)
    dataset.pack(manifests, tmp_path / "ds", shards=2, seed=0)

    plain = np.concatenate([b.numpy() for b in records.training_dataset(
        tmp_path / "ds", 128, 4, shuffle_buffer=0, repeat=False)])
    mirrored = np.concatenate([b.numpy() for b in records.training_dataset(
        tmp_path / "ds", 128, 4, mirror=True, shuffle_buffer=0, repeat=False, seed=3)])
    same = [np.array_equal(m, p) for m, p in zip(mirrored, plain)]
    flipped = [np.array_equal(m, p[:, ::-1]) for m, p in zip(mirrored, plain)]
    assert all(s or f for s, f in zip(same, flipped))
    assert 0 < sum(flipped) < len(plain)

    # 128 -> 32 reads with libjpeg's 1/4 DCT scaling; it must still be the same picture
    by_id = {r["image"]: r for r in rows}
    ids, small = next(records.iterate_images(tmp_path / "ds", 16, resolution=32))
    want = np.stack([np.asarray(load_srgb(by_id[i]["path"]).resize((32, 32), Image.BOX)) for i in ids])
    assert small.shape == (16, 32, 32, 3)
    assert np.abs(small.astype(float) - want).mean() < 3.0
    # 128 -> 48 is not a power-of-two ratio: DCT 1/2 to 64, then an area resize
    batch = next(iter(records.training_dataset(tmp_path / "ds", 48, 8, seed=1)))
    assert batch.shape == (8, 48, 48, 3) and batch.dtype.name == "float32"
    assert -1.0 <= float(batch.numpy().min()) and float(batch.numpy().max()) <= 1.0
    with pytest.raises(SetupError, match="upsampling"):
        records.training_dataset(tmp_path / "ds", 256, 4)
