"""Projection: images made from a known w come back (reconstruction and w), both distances
work, the encoder starts nearer the answer, outputs repeat byte for byte, bad input is one
sentence."""

from __future__ import annotations

import hashlib

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from ganflow import annotate, cli, convnets, encoder, inversion, latents, networks, project, tables, weights
from ganflow.runlog import SetupError
from test_samples import tiny_generator

QUICK = inversion.Settings(steps=150, w_samples=2000)


@pytest.fixture(scope="module")
def nets() -> tuple[networks.Generator, networks.Discriminator]:
    """A tiny generator without noise (in the random tiny one, noise paints half the image,
    and no w could explain it) and a random discriminator, seeded: projection is a
    non-convex search, and the tests should see the same one every run."""
    keras.utils.set_random_seed(0)
    G = tiny_generator(16)
    for conv in G.synthesis.convs:
        conv.noise_strength.assign(0.0)
    return G, networks.Discriminator(resolution=16, channel_base=128, channel_max=16)


@pytest.fixture(scope="module")
def G(nets) -> networks.Generator:
    return nets[0]


@pytest.fixture(scope="module")
def D(nets) -> networks.Discriminator:
    return nets[1]


def _known(G, seed: int) -> tuple[np.ndarray, np.ndarray]:
    ws = latents.map_latents(G, latents.seed_z([seed], G.z_dim))[0]
    return ws, inversion.reconstruct(G, ws, None)


def _mse(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean((a.astype(np.float64) / 127.5 - b.astype(np.float64) / 127.5) ** 2))


@pytest.mark.parametrize("seed", [1, 4])
def test_round_trip_recovers_the_image_and_its_w(G, D, seed):
    true_ws, target = _known(G, seed)
    w_mean, _ = inversion.w_stats(G, QUICK.w_samples)
    p = inversion.project(G, target, inversion.discriminator_features(D), QUICK)
    start_mse = _mse(inversion.reconstruct(G, np.broadcast_to(w_mean, true_ws.shape), None), target)
    assert _mse(inversion.reconstruct(G, p.ws, p.noise), target) < 0.1 * start_mse
    assert p.distance[-1] < 0.2 * p.distance[0]
    # Found in W (one w for every layer), and near the true w, not only a look-alike.
    assert np.allclose(p.ws, p.ws[0])
    assert np.linalg.norm(p.ws[0] - true_ws[0]) < 0.3 * np.linalg.norm(w_mean - true_ws[0])


def test_w_plus_mode_gives_each_layer_its_own_w_and_reconstructs(G, D):
    true_ws, target = _known(G, 4)
    w_mean, _ = inversion.w_stats(G, QUICK.w_samples)
    p = inversion.project(G, target, inversion.discriminator_features(D),
                        inversion.Settings(steps=150, w_samples=2000, mode="w+"))
    assert not np.allclose(p.ws, p.ws[0])
    start_mse = _mse(inversion.reconstruct(G, np.broadcast_to(w_mean, true_ws.shape), None), target)
    assert _mse(inversion.reconstruct(G, p.ws, p.noise), target) < 0.3 * start_mse


def test_vgg16_distance_runs_the_real_architecture_with_random_weights(G):
    """The ImageNet weights are a download; the same network with random weights proves the
    code path (resizing, BGR mean, five blocks, gradients) without them."""
    features = inversion.vgg16_features(None, 16)
    _, target = _known(G, 2)
    x = tf.constant(target[None] / 127.5 - 1.0, tf.float32)
    feats = features(x)
    assert [f.shape[1] for f in feats] == [64, 32, 16, 8, 4]  # 16 px is enlarged to 64 for VGG
    assert float(inversion.distance(feats, feats)[0]) == 0.0
    p = inversion.project(G, target, features, inversion.Settings(steps=40, w_samples=2000))
    assert p.distance[-1] < 0.5 * p.distance[0]


def test_distance_is_zero_only_for_the_same_image(D):
    features = inversion.discriminator_features(D)
    rng = np.random.default_rng(0)
    a, b = (tf.constant(rng.uniform(-1, 1, (1, 16, 16, 3)), tf.float32) for _ in range(2))
    fa, fb = features(a), features(b)
    assert float(inversion.distance(fa, fa)[0]) == 0.0
    assert float(inversion.distance(fa, fb)[0]) == pytest.approx(float(inversion.distance(fb, fa)[0]))
    assert float(inversion.distance(fa, fb)[0]) > 0.1


def test_learning_rate_ramps_up_then_down():
    s = inversion.Settings()
    lrs = [inversion.learning_rate(t, s) for t in np.linspace(0, 0.999, 200)]
    assert lrs[0] == 0.0 and max(lrs) == pytest.approx(s.lr) and lrs[-1] < 0.01 * s.lr
    assert inversion.learning_rate(0.5, s) == s.lr


def test_noise_penalty_is_small_for_white_noise_and_large_for_structure():
    rng = np.random.default_rng(0)
    white = tf.constant(rng.standard_normal((1, 32, 32, 1)), tf.float32)
    smooth = tf.constant(np.repeat(np.repeat(rng.standard_normal((1, 4, 4, 1)), 8, 1), 8, 2), tf.float32)
    assert float(inversion.noise_penalty([white])) < 0.01 < float(inversion.noise_penalty([smooth]))


def test_encoder_guesses_nearer_than_the_mean_and_survives_save_and_load(G, tmp_path):
    E = encoder.train(G, encoder.EncoderSettings(steps=150, batch=16, channels=8))
    assert E.info["heldout_error"] < 0.5
    w_mean, _ = inversion.w_stats(G, QUICK.w_samples)
    known = [_known(G, seed) for seed in range(1, 7)]
    guessed = np.mean([np.linalg.norm(E.guess(target) - ws) for ws, target in known])
    assert guessed < 0.8 * np.mean([np.linalg.norm(w_mean - ws) for ws, _ in known])
    convnets.save_encoder(E, tmp_path / "e.npz")
    again = convnets.load_encoder(tmp_path / "e.npz", G)
    assert np.array_equal(E.guess(known[0][1]), again.guess(known[0][1]))
    with pytest.raises(SetupError, match="trained for a 16px generator"):
        convnets.load_encoder(tmp_path / "e.npz", tiny_generator(32))


def test_project_file_writes_the_same_bytes_twice(G, D, tmp_path):
    _, target = _known(G, 6)
    Image.fromarray(target).save(tmp_path / "face.png")
    digests = []
    for run in ("a", "b"):
        out = tmp_path / run
        project.project_file(G, inversion.discriminator_features(D), tmp_path / "face.png", out,
                             inversion.Settings(steps=20, w_samples=2000), frames=4, distance_name="discriminator")
        digests.append({f: hashlib.sha256((out / f).read_bytes()).hexdigest()
                        for f in ("w.npz", "reconstruction.png", "sheet.png")})
        assert (out / "optimisation.mp4").stat().st_size > 0
    assert digests[0] == digests[1]
    ws, noise = latents.load_w(tmp_path / "a/w.npz", G)
    assert np.array_equal(inversion.reconstruct(G, ws, noise), np.asarray(Image.open(tmp_path / "a/reconstruction.png")))
    lay = annotate.layout(16, 16, columns=True, rows=False)  # target | reconstruction, side by side
    assert Image.open(tmp_path / "a/sheet.png").size == (2 * 16 * lay.scale, lay.top + 16 * lay.scale)


def test_ganflow_project_writes_what_the_rule_writes(G, D, tmp_path, capsys):
    """`ganflow project` on an export: the rule's four files, the same bytes as the library
    call with the same settings (the verb's defaults are the schema's)."""
    weights.write_export(tmp_path / "export", G, D, {})
    _, target = _known(G, 6)
    Image.fromarray(target).save(tmp_path / "face.png")
    assert cli.main(["project", "--run", str(tmp_path / "export"), "--out", str(tmp_path / "cli"), "--steps", "5",
                     str(tmp_path / "face.png")]) == 0
    assert "w.npz: distance" in capsys.readouterr().out
    G2, D2, _ = weights.load_export(tmp_path / "export")
    project.project_file(G2, inversion.discriminator_features(D2), tmp_path / "face.png", tmp_path / "lib",
                         inversion.Settings(steps=5), distance_name="discriminator")
    for name in ("w.npz", "reconstruction.png", "sheet.png"):
        assert (tmp_path / "cli" / name).read_bytes() == (tmp_path / "lib" / name).read_bytes(), name
    assert (tmp_path / "cli" / "optimisation.mp4").stat().st_size > 0
    with pytest.raises(SystemExit):
        cli.main(["project", "--run", str(tmp_path / "export"), "--out", str(tmp_path / "x"), "--distance", "vgg16",
                  str(tmp_path / "face.png")])


def test_bad_input_is_one_sentence(G, tmp_path, monkeypatch):
    with pytest.raises(SetupError, match="projection mode 'z'"):
        inversion.Settings(mode="z")
    (tmp_path / "broken.png").write_bytes(b"not a png")
    with pytest.raises(SetupError, match="cannot project"):
        inversion.load_target(tmp_path / "broken.png", 16)
    tables.save_npz(tmp_path / "w.npz", {"w": np.zeros((1, 3, 8), np.float32)})
    with pytest.raises(SetupError, match="project with the same run"):
        latents.load_w(tmp_path / "w.npz", G)
    (tmp_path / "vgg.h5").write_bytes(b"not weights")
    with pytest.raises(SetupError, match="md5"):
        inversion.check_vgg16(tmp_path / "vgg.h5")
    monkeypatch.setattr(inversion, "VGG16_MD5", hashlib.md5(b"not weights").hexdigest())
    inversion.check_vgg16(tmp_path / "vgg.h5")
    with pytest.raises(SetupError, match="sha256"):
        inversion.check_vgg16(tmp_path / "vgg.h5", "0" * 64)
    with pytest.raises(SetupError, match="do not exist"):
        inversion.check_vgg16(tmp_path / "missing.h5", None)
    with pytest.raises(SetupError, match="distance 'lpips'"):
        inversion.make_features("lpips")


def test_npz_bytes_do_not_depend_on_when_they_were_written(tmp_path):
    arrays = {"b": np.arange(5.0), "a": np.array("text")}
    first = tables.save_npz(tmp_path / "x.npz", arrays).read_bytes()
    assert tables.save_npz(tmp_path / "y.npz", dict(reversed(arrays.items()))).read_bytes() == first
    back = tables.load_npz(tmp_path / "x.npz", "test")
    assert str(back["a"]) == "text" and np.array_equal(back["b"], arrays["b"])
