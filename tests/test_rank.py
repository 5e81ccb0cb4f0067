"""rank: D sees images as training fed them (NHWC, RGB, [-1, 1]), every image once, sorted;
scores do not depend on the batch; keep drops exactly floor(share * n) at each end, and the
next round's packing takes exactly the kept images; the CLI ranks any folder."""

from __future__ import annotations

import hashlib
import json
import math

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from ganflow import dataset, keep, networks, rank, records
from ganflow.runlog import SetupError
from ganflow.tables import read_tsv, write_tsv

IMAGE_COLUMNS = ["image", "id", "path", "source", "box", "width", "height", "format", "sha256", "upscale"]
RES = 16
N = 10


def _picture(k: int) -> np.ndarray:
    """Top half: red rises and blue falls with k on one of two interleaved ladders; the
    bottom half and green say the opposite, so reading the wrong pixels ranks differently."""
    rng = np.random.default_rng(k)
    img = rng.integers(0, 256, (RES, RES, 3), dtype=np.uint8)
    red, blue = 20 + 23 * ((k * 7) % N), 230 - 19 * ((k * 3) % N)
    img[:RES // 2, :, 0] = red
    img[:RES // 2, :, 2] = blue
    img[RES // 2:, :, 0] = 255 - red
    img[:, :, 1] = red
    return img


@pytest.fixture(scope="module")
def packed(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("rank")
    rows = []
    for k in range(N):
        path = root / "images" / "0000" / f"{500 + k}-0.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(_picture(k)).save(path)
        data = path.read_bytes()
        rows.append({"image": f"{500 + k}-0", "id": str(500 + k), "path": str(path), "source": f"src/{k}.png",
                     "box": "0,0,16,16", "width": RES, "height": RES, "format": "png",
                     "sha256": hashlib.sha256(data).hexdigest(), "upscale": "none"})
    manifests = [root / "images" / "0000.tsv", root / "images" / "0001.tsv"]
    for m, manifest in enumerate(manifests):
        write_tsv(manifest, rows[m::2], IMAGE_COLUMNS)
    dataset.pack(manifests, root / "ds", shards=3, seed=1)
    return {"root": root, "manifests": manifests, "rows": rows, "ds": root / "ds"}


class RedMinusBlue:
    """A 'discriminator' reading NHWC RGB in [-1, 1]: mean red minus half the mean blue of the top half."""

    def __call__(self, x: tf.Tensor) -> tf.Tensor:
        top = x[:, :RES // 2]
        return (tf.reduce_mean(top[..., 0], axis=[1, 2]) - 0.5 * tf.reduce_mean(top[..., 2], axis=[1, 2]))[:, None]


def _expected(k: int) -> float:
    top = _picture(k)[:RES // 2].astype(np.float64) / 127.5 - 1.0
    return top[..., 0].mean() - 0.5 * top[..., 2].mean()


def test_layout_and_range_as_trained(packed):
    rows = rank.score_dataset(RedMinusBlue(), packed["ds"], batch_size=4)
    scores = {r["image"]: r["score"] for r in rows}
    assert scores == pytest.approx({f"{500 + k}-0": _expected(k) for k in range(N)}, abs=1e-5)
    order = [r["image"] for r in sorted(rows, key=lambda r: r["score"])]
    # the classic port's bug: HWC memory read as CHW, channels swapped; it ranks differently
    pixels = np.stack([_picture(k) for k in range(N)])
    scrambled = pixels.reshape(N, 3, RES, RES).transpose(0, 2, 3, 1)[..., ::-1]
    wrong = np.asarray(RedMinusBlue()(tf.constant(scrambled, tf.float32) / 127.5 - 1.0))[:, 0]
    assert [f"{500 + k}-0" for k in np.argsort(wrong, kind="stable")] != order


def test_rank_tsv_covers_every_image_once_sorted(packed, tmp_path):
    paths = rank.image_paths(packed["manifests"])
    rows = rank.score_dataset(RedMinusBlue(), packed["ds"], paths=paths, batch_size=3)
    assert rank.write_rank(rows, tmp_path / "rank.tsv") == N
    table = read_tsv(tmp_path / "rank.tsv")
    assert list(table[0]) == rank.RANK_COLUMNS
    assert sorted(r["image"] for r in table) == sorted(records.read_meta(packed["ds"])["ids"])
    scores = [float(r["score"]) for r in table]
    assert scores == sorted(scores) and len(set(scores)) == N
    assert [int(r["rank"]) for r in table] == list(range(1, N + 1))
    assert all(r["path"] == paths[r["image"]] and r["reason"] == "" for r in table)


@pytest.fixture(scope="module")
def D() -> networks.Discriminator:
    return networks.Discriminator(resolution=RES, channel_base=64, channel_max=8, mbstd_group=4)


def test_scores_do_not_depend_on_the_batch(packed, D):
    alone = {r["image"]: r["score"] for r in rank.score_dataset(D, packed["ds"], batch_size=1)}
    batched = {r["image"]: r["score"] for r in rank.score_dataset(D, packed["ds"], batch_size=4)}
    assert len(alone) == N and batched == pytest.approx(alone, rel=1e-4, abs=1e-5)
    # ...which the minibatch-stddev group of four would break
    x = np.stack([_picture(k) for k in range(4)]).astype(np.float32) / 127.5 - 1.0
    assert not np.allclose(np.asarray(D(tf.constant(x)))[0], np.asarray(D(tf.constant(x[:1])))[0], atol=1e-6)


def _folder(root):
    folder = root / "folder"
    (folder / "sub").mkdir(parents=True)
    Image.fromarray(_picture(1)).save(folder / "a.png")
    Image.fromarray(np.tile(_picture(2), (3, 2, 1))).save(folder / "sub" / "wide.jpg")  # 32x48, not square
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (folder / ".hidden.png").write_bytes(b"ignored")
    return folder


def test_score_folder_keeps_bad_files_as_rows(tmp_path, D):
    rows = rank.score_folder(D, _folder(tmp_path), batch_size=2)
    assert rank.write_rank(rows, tmp_path / "rank.tsv") == 3
    table = read_tsv(tmp_path / "rank.tsv")
    assert [r["image"] for r in table[:2]] in (["a.png", "sub/wide.jpg"], ["sub/wide.jpg", "a.png"])
    assert float(table[0]["score"]) <= float(table[1]["score"])
    assert table[2]["image"] == "broken.jpg" and table[2]["score"] == table[2]["rank"] == ""
    assert table[2]["reason"] in ("undecodable", "truncated")
    with pytest.raises(SetupError, match="does not exist"):
        rank.score_folder(D, tmp_path / "nowhere")


def _rank_table(path, n: int) -> list[str]:
    """A rank.tsv of n images with shuffled ids, plus two unscored rows; returns ids lowest first."""
    ids = [f"{k}-0" for k in np.random.default_rng(n).permutation(n)]
    rows = [{"image": i, "path": "", "score": float(s)} for s, i in enumerate(ids)]
    rank.write_rank(rows + [{"image": "zz-0", "path": "x", "score": None, "reason": "undecodable"},
                            {"image": "nan-0", "path": "y", "score": float("nan")}], path)
    return ids


@pytest.mark.parametrize("n, low, high, dropped", [(10, 0.25, 0.15, (2, 1)), (10, 0.0, 0.0, (0, 0)),
                                                    (100, 0.29, 0.01, (29, 1)), (7, 0.1, 0.5, (0, 3))])
def test_keep_drops_exactly_the_configured_share(tmp_path, n, low, high, dropped):
    ids = _rank_table(tmp_path / "rank.tsv", n)
    summary = keep.make_keep(tmp_path / "rank.tsv", tmp_path / "round-2" / "keep.tsv", drop_lowest=low,
                             drop_highest=high, sheets_dir=tmp_path / "sheets")
    a, b = dropped
    kept = [r["image"] for r in read_tsv(tmp_path / "round-2" / "keep.tsv")]
    assert kept == ids[a:n - b]
    assert summary == {"count": n, "kept": n - a - b, "dropped_lowest": a, "dropped_highest": b, "unscored": 2}
    assert [(r["image"], r["reason"], r["rank"]) for r in read_tsv(tmp_path / "rank.tsv")[n:]] == [
        ("nan-0", "non_finite_score", ""), ("zz-0", "undecodable", "")]
    thumbs = min(n, 64)
    for sheet in ("lowest.png", "highest.png"):
        assert Image.open(tmp_path / "sheets" / sheet).size[0] == 64 * int(np.ceil(np.sqrt(thumbs)))


def test_keep_refuses_impossible_shares(tmp_path):
    _rank_table(tmp_path / "rank.tsv", 5)
    for low, high in ((0.6, 0.4), (-0.1, 0.0), (1.0, 0.0)):
        with pytest.raises(SetupError, match="drop_lowest"):
            keep.make_keep(tmp_path / "rank.tsv", tmp_path / "keep.tsv", drop_lowest=low, drop_highest=high,
                           sheets_dir=tmp_path)
    assert not (tmp_path / "keep.tsv").exists()


def test_next_round_packs_exactly_the_kept_images(packed, tmp_path):
    rows = rank.score_dataset(RedMinusBlue(), packed["ds"], paths=rank.image_paths(packed["manifests"]))
    rank.write_rank(rows, tmp_path / "round-1" / "rank.tsv")
    keep.make_keep(tmp_path / "round-1" / "rank.tsv", tmp_path / "round-2" / "keep.tsv", drop_lowest=0.2,
                   drop_highest=0.1, sheets_dir=tmp_path / "round-1" / "keep")
    meta = dataset.pack(packed["manifests"], tmp_path / "round-2" / "dataset",
                        keep=tmp_path / "round-2" / "keep.tsv", shards=2, seed=0)
    by_score = sorted(range(N), key=_expected)
    assert sorted(meta["ids"]) == sorted(f"{500 + k}-0" for k in by_score[2:N - 1])
    assert meta["excluded_by_keep"] == 3


def _export(G: networks.Generator, D: networks.Discriminator, out) -> None:
    """What weights.load_export reads: per network a data-only checkpoint and its architecture."""
    for key, net in (("generator", G), ("discriminator", D)):
        tf.train.Checkpoint(**{key: net}).write(str(out / key / "weights"))
        (out / key / f"{key}.json").write_text(json.dumps({"architecture": net.architecture}))


def test_cli_ranks_a_folder_or_a_dataset_with_an_exported_run(tmp_path, D, packed):
    G = networks.Generator(resolution=RES, z_dim=8, w_dim=8, mapping_layers=1, channel_base=64, channel_max=8)
    _export(G, D, tmp_path / "export")
    folder = _folder(tmp_path)
    write_tsv(folder / "0000.tsv", [{"image": "a", "path": "a.png"}], ["image", "path"])  # an images stage's
    (folder / "notes.txt").write_text("not an image")                                       # manifest, a note
    assert rank.main(["--run", str(tmp_path / "export"), "--images", str(folder),
                      "--out", str(tmp_path / "rank.tsv"), "--batch-size", "2"]) == 0
    table = read_tsv(tmp_path / "rank.tsv")
    expected = {r["image"]: r["score"] for r in rank.score_folder(D, folder)}
    assert expected["broken.jpg"] is None
    assert {r["image"] for r in table} == set(expected) and not {"0000.tsv", "notes.txt"} & set(expected)
    scored = sum(1 for r in table if r["score"])
    for end in ("lowest", "highest"):  # the same sheets as the workflow's ranking gets
        assert Image.open(tmp_path / f"rank-{end}.png").width == 64 * math.ceil(math.sqrt(scored))
    assert float(table[0]["score"]) == pytest.approx(expected[table[0]["image"]], rel=1e-4, abs=1e-5)
    manifests = [a for m in packed["manifests"] for a in ("--manifest", str(m))]
    rank.main(["--run", str(tmp_path / "export"), "--dataset", str(packed["ds"]), *manifests,
               "--out", str(tmp_path / "ds.tsv")])
    table = read_tsv(tmp_path / "ds.tsv")
    assert len(table) == N and all(r["path"].endswith(f"{r['image']}.png") and r["score"] for r in table)
    with pytest.raises(SystemExit, match="no exported"):
        rank.main(["--run", str(tmp_path / "none"), "--images", str(folder), "--out", str(tmp_path / "x.tsv")])
