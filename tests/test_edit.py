"""Edits: SeFa and GANSpace find what they promise, a tag direction learned through the
tagger moves a planted attribute (and the tagger's score) the right way, the tagger
learns the demo's drawn hair colours against their known truth, and edits apply to
seeds and projections, from Python and the command line."""

from __future__ import annotations

import hashlib

import keras
import numpy as np
import pytest
from PIL import Image

from ganflow import annotate, convnets, drawing, edit, inversion, latents, networks, tables, tagger, weights
from ganflow.runlog import SetupError
from ganflow.tables import read_tsv, write_tsv
from test_samples import tiny_generator


@pytest.fixture(scope="module")
def G() -> networks.Generator:
    """Seeded, with a trained model's small noise strength: what a tag means should come
    from w, not from the noise."""
    keras.utils.set_random_seed(1)
    G = tiny_generator(16)
    for conv in G.synthesis.convs:
        conv.noise_strength.assign(0.05)
    return G


def _redness(images: np.ndarray) -> np.ndarray:
    return images[..., 0].mean((-2, -1)) - images[..., 1:].mean((-3, -2, -1))


@pytest.fixture(scope="module")
def red_tagger(G) -> tuple[convnets.Tagger, float]:
    """A tagger trained on the generator's own images, tagged 'red' where red outweighs green
    and blue more than in the median image: a planted attribute with a known meaning."""
    images = latents.render(G, latents.seed_ws(G, range(1000, 1400), 1.0))
    red = _redness(images)
    labels = (red > np.median(red)).astype(np.float32)[:, None]
    return tagger.train(images, labels, ["red"], tagger.TaggerSettings(epochs=15)), float(np.median(red))


def test_sefa_directions_change_the_styles_most(G):
    d = edit.sefa(G, 3, samples=2000)
    assert d.names == ["sefa-0", "sefa-1", "sefa-2"]
    assert np.allclose(d.vectors @ d.vectors.T, np.eye(3), atol=1e-5)
    a = np.concatenate([c.conv.affine.weight.numpy() for c in G.synthesis.convs], 1)
    a /= np.linalg.norm(a, axis=0, keepdims=True)
    moved = [np.linalg.norm(v @ a) for v in d.vectors]
    assert moved == sorted(moved, reverse=True)
    random = np.random.default_rng(0).standard_normal((50, G.w_dim))
    assert moved[0] >= max(np.linalg.norm(r @ a) / np.linalg.norm(r) for r in random)
    fine = edit.sefa(G, 1, layers="fine", samples=2000)
    assert tuple(fine.layers[0]) == networks.style_groups(16)["fine"]


def test_ganspace_components_are_ordered_by_spread(G):
    d = edit.ganspace(G, 4, samples=2000)
    assert np.allclose(d.vectors @ d.vectors.T, np.eye(4), atol=1e-5)
    assert list(d.scales) == sorted(d.scales, reverse=True)
    w = latents.w_samples(G, 2000)
    assert d.scales[0] == pytest.approx((w @ d.vectors[0]).std(), rel=1e-4)


def test_shift_moves_only_its_layers_by_its_scale(G, tmp_path):
    d = latents.Directions(["x"], np.eye(G.w_dim)[:1], np.array([2.0]), np.array([[1, 3]]))
    latents.save_directions(d, tmp_path / "d.npz")
    d = latents.load_directions(tmp_path / "d.npz")
    ws = np.zeros((2, G.num_ws, G.w_dim), np.float32)
    moved = d.shift(ws, "x", 1.5)
    assert np.array_equal(d.shift(ws, "x", 0.0), ws)
    assert np.all(moved[:, 1:3, 0] == 3.0) and np.count_nonzero(moved) == 2 * 2
    with pytest.raises(SetupError, match="direction 'y' is not known"):
        d.shift(ws, "y", 1.0)


def test_tag_direction_moves_the_planted_attribute_and_the_tagger_score(G, red_tagger, tmp_path):
    T, median = red_tagger
    held = latents.render(G, latents.seed_ws(G, range(5000, 5200), 1.0))
    (precision, recall), = tagger.precision_recall(T.scores(held), (_redness(held) > median)[:, None])
    assert precision > 0.8 and recall > 0.8
    d = edit.make_tag_directions(G, T, tmp_path / "tags.npz", tmp_path / "tags.tsv", samples=600, seeds=range(8),
                                 strength=2.0)
    row, = read_tsv(tmp_path / "tags.tsv")
    assert row["direction"] == "tag-red" and float(row["boundary_accuracy"]) > 0.85
    assert float(row["score_minus"]) < float(row["score_zero"]) < float(row["score_plus"])
    images, scores = edit.tag_scores(G, T, d, "tag-red", list(range(20)), (-2.0, 0.0, 2.0), 0.7)
    red = _redness(images)
    assert np.all(scores[:, 2] > scores[:, 0]) and np.all(red[:, 2] > red[:, 0])
    edit.tag_figure(G, T, d, "tag-red", tmp_path / "red.png", tmp_path / "red.tsv", seeds=[0, 1], strengths=(-2, 2))
    cells = read_tsv(tmp_path / "red.tsv")
    assert [(c["seed"], c["strength"]) for c in cells] == [("0", "-2"), ("0", "2"), ("1", "-2"), ("1", "2")]
    assert all(float(lo["score"]) < float(hi["score"]) for lo, hi in zip(cells[::2], cells[1::2]))


def test_conditional_direction_is_orthogonal_to_its_conditions():
    rng = np.random.default_rng(0)
    a, b, c = (v / np.linalg.norm(v) for v in rng.standard_normal((3, 6)))
    cond = edit.conditional(a, [b, c])
    assert abs(cond @ b) < 1e-9 and abs(cond @ c) < 1e-9 and cond @ a > 0
    with pytest.raises(SetupError, match="span"):
        edit.conditional(b, [b])


def test_boundary_finds_a_planted_linear_rule():
    rng = np.random.default_rng(0)
    w = rng.standard_normal((1000, 8))
    true = np.eye(8)[2] + 0.5 * np.eye(8)[5]
    normal, accuracy = edit.boundary(w, w @ true + 0.1 * rng.standard_normal(1000), 0.3)
    assert normal @ true / np.linalg.norm(true) > 0.98 and accuracy > 0.95


def _drawn_faces(tmp_path, n: int) -> tuple[list, list]:
    """n demo drawings cut round their face box, as the final images of two shards, with the
    ids manifests holding their tags: the demo mirror's truth, which the tagger must find."""
    rng = np.random.default_rng(0)
    images, ids = {"0000": [], "0001": []}, {"0000": [], "0001": []}
    for i in range(n):
        dr = drawing.draw_picture(rng, (96, 160), (56, 80))
        x, y, w, h = dr.box
        face = dr.image.crop((x - w // 4, y - h // 4, x + w + w // 4, y + h + h // 4)).resize((32, 32))
        path = tmp_path / f"{i}.png"
        face.save(path)
        shard = f"{i % 2:04d}"
        images[shard].append({"image": f"{i}-0", "id": str(i), "path": str(path)})
        ids[shard].append({"id": str(i), "path": "", "rating": "s", "tags": " ".join(sorted(dr.tags))})
    for shard in images:
        write_tsv(tmp_path / f"images-{shard}.tsv", images[shard], ["image", "id", "path"])
        write_tsv(tmp_path / f"ids-{shard}.tsv", ids[shard], ["id", "path", "rating", "tags"])
    return sorted(tmp_path.glob("images-*.tsv")), sorted(tmp_path.glob("ids-*.tsv"))


def test_tagger_learns_the_demo_hair_colours_against_their_truth(tmp_path):
    images, ids = _drawn_faces(tmp_path, 240)
    wanted = ["blonde_hair", "blue_hair", "long_hair"]
    T = tagger.make_tagger(images, ids, tmp_path / "tagger.npz", tmp_path / "tagger.tsv", resolution=32, tags=wanted,
                           min_count=5, settings=tagger.TaggerSettings(epochs=25))
    rows = {r["tag"]: r for r in read_tsv(tmp_path / "tagger.tsv")}
    assert list(rows) == wanted
    for tag in ("blonde_hair", "blue_hair"):
        assert float(rows[tag]["precision"]) >= 0.75 and float(rows[tag]["recall"]) >= 0.75, rows[tag]
    assert float(rows["long_hair"]["recall"]) > 0.7
    again = convnets.load_tagger(tmp_path / "tagger.npz")
    pixels = np.stack([np.asarray(Image.open(tmp_path / f"{i}.png")) for i in range(4)])
    assert again.tags == wanted and np.array_equal(again.scores(pixels), T.scores(pixels))


def test_tag_choice_and_bad_settings_are_one_sentence():
    sets = [frozenset({"a", "b"})] * 6 + [frozenset({"a"})] * 4
    assert tagger.choose_tags(sets, [], 3) == ["b"]  # 'a' is on every image: nothing to tell apart
    assert tagger.choose_tags(sets, ["b"], 4) == ["b"]
    with pytest.raises(SetupError, match="tag 'a' is on 10 of 10 images"):
        tagger.choose_tags(sets, ["a"], 3)
    with pytest.raises(SetupError, match="no tag is on at least"):
        tagger.choose_tags(sets, [], 5)
    names = [f"img{i}" for i in range(1000)]
    mask = tagger.heldout_mask(names, 0.2)
    assert 0.15 < mask.mean() < 0.25 and np.array_equal(tagger.heldout_mask(names[::-1], 0.2), mask[::-1])
    with pytest.raises(SetupError, match="edit layers 'top'"):
        edit.layer_range(tiny_generator(16), "top")


def test_figure_video_and_edits_of_seeds_and_projections(G, tmp_path):
    d = edit.make_directions(G, "ganspace", tmp_path / "ganspace.npz", k=2, samples=2000)
    png = edit.direction_figure(G, d, tmp_path / "ganspace.png", strengths=(-2, 0, 2))
    lay = annotate.layout(16, 16, columns=True, rows=True, row_labels=d.names)
    assert Image.open(png).size == (lay.left + 3 * 16 * lay.scale, lay.top + 2 * 16 * lay.scale)
    edit.direction_video(G, d, tmp_path / "ganspace.mp4", seeds=[0, 1], seconds=0.5, fps=8)
    assert (tmp_path / "ganspace.mp4").stat().st_size > 0

    # From the command line: strength 0 of a seed is its sample; of a projection, its reconstruction.
    export = tmp_path / "run"
    weights.write_export(export, G, networks.Discriminator(resolution=16, channel_base=128, channel_max=16), {})
    G2, _, _ = weights.load_export(export)
    args = ["--run", str(export), "--directions", str(tmp_path / "ganspace.npz"), "--direction", "ganspace-0"]
    edit.main(args + ["--strength", "0", "--seeds", "3", "--out", str(tmp_path / "seed.png")])
    assert np.array_equal(np.asarray(Image.open(tmp_path / "seed.png")),
                          latents.render(G2, latents.seed_ws(G2, [3], 0.7))[0])
    rng = np.random.default_rng(0)
    noise = {f"noise_{i}": rng.standard_normal(s).astype(np.float32) for i, s in enumerate(G.synthesis.noise_shapes)}
    ws = latents.seed_ws(G, [9], 1.0)
    tables.save_npz(tmp_path / "p/w.npz", {"w": ws, **noise})
    edit.main(args + ["--strength", "0", "--projection", str(tmp_path / "p/w.npz"), "--out", str(tmp_path / "p0.png")])
    recon = inversion.reconstruct(G2, ws[0], [noise[f"noise_{i}"] for i in range(len(noise))])
    assert np.array_equal(np.asarray(Image.open(tmp_path / "p0.png")), recon)
    edit.main(args + ["--strength", "-2", "--strength", "2", "--seeds", "0-1", "--out", str(tmp_path / "grid.png")])
    first = hashlib.sha256((tmp_path / "grid.png").read_bytes()).hexdigest()
    edit.main(args + ["--strength", "-2", "--strength", "2", "--seeds", "0-1", "--out", str(tmp_path / "grid.png")])
    assert hashlib.sha256((tmp_path / "grid.png").read_bytes()).hexdigest() == first
    with pytest.raises(SystemExit, match="direction 'sefa-0' is not known"):
        edit.main(["--run", str(export), "--directions", str(tmp_path / "ganspace.npz"), "--direction", "sefa-0",
                   "--strength", "1", "--seeds", "0", "--out", str(tmp_path / "x.png")])
