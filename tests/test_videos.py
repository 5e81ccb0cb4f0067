"""Videos: decoded frame counts, sizes and pixel format, the latent walk's smoothing and
loop, style mixing that moves the intended scales, and the progress video's order."""

from __future__ import annotations

import math
from pathlib import Path

import imageio_ffmpeg
import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from ganflow import networks, videos
from ganflow.runlog import SetupError
from ganflow.tables import write_tsv


def decode(path: Path) -> tuple[dict, np.ndarray]:
    """ffmpeg's own description of the stream, and every frame as float32 [N, H, W, 3]."""
    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)
    w, h = meta["size"]
    frames = np.stack([np.frombuffer(f, np.uint8).reshape(h, w, 3) for f in reader]).astype(np.float32)
    return meta, frames


def assert_stream(meta: dict, frames: np.ndarray, count: int, size: tuple[int, int], fps: float) -> None:
    assert meta["codec"] == "h264"
    assert meta["pix_fmt"].split("(")[0] == "yuv420p"
    assert tuple(meta["size"]) == size
    assert meta["fps"] == pytest.approx(fps)
    assert len(frames) == count


def tiny_generator(resolution: int, seed: int = 0) -> networks.Generator:
    keras.utils.set_random_seed(seed)
    return networks.Generator(resolution=resolution, z_dim=32, w_dim=32, mapping_layers=2,
                              channel_base=512, channel_max=64)


def mean_abs(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).mean())


# ----- latent walk ------------------------------------------------------------------------


def test_latent_walk_is_gaussian_smoothed_white_noise_that_loops():
    frames, sigma, dim = 64, 4.0, 256
    walk = videos.LatentWalk(frames, (4, dim), sigma, seed=3)
    t = np.arange(frames)
    z = walk(t)
    assert z.shape == (frames, 4, dim) and z.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(z, axis=-1), math.sqrt(dim), rtol=1e-5)
    # Wrap-around: frame `frames` is frame 0 again, so the last frame leads back to the first.
    np.testing.assert_allclose(walk(np.array([frames]))[0], z[0], atol=1e-4)
    # Gaussian-smoothed white noise correlates over a lag d as exp(-d^2 / (4 sigma^2)).
    for d in (1, 4, 8, 16):
        corr = float((z * np.roll(z, -d, axis=0)).sum(-1).mean() / dim)
        assert corr == pytest.approx(math.exp(-d * d / (4 * sigma * sigma)), abs=0.06), d
    # Each frame is computed on its own: any split into batches gives the same latents.
    np.testing.assert_allclose(np.concatenate([walk(t[:5]), walk(t[5:])]), z, atol=1e-5)
    assert mean_abs(videos.LatentWalk(frames, (4, dim), sigma, seed=4)(t), z) > 0.5


def test_latent_walk_refuses_no_smoothing():
    with pytest.raises(SetupError, match="smoothing"):
        videos.LatentWalk(10, (1, 8), 0.0, seed=0)


# ----- generator videos ---------------------------------------------------------------------


def test_interpolation_video_loops_and_is_batch_independent(tmp_path):
    G = tiny_generator(16)
    a, b = tmp_path / "a.mp4", tmp_path / "b.mp4"
    kw = dict(grid=(3, 2), duration=2, fps=8, smoothing_sec=0.5, seed=1, psi=0.8, crf=12)
    info = videos.interpolation_video(G, a, batch=6, **kw)           # one frame per generator call
    videos.interpolation_video(G, b, batch=30, **kw)                 # five per call, last call padded
    meta, frames = decode(a)
    assert info == {"frames": 16, "size": [48, 32]}
    assert_stream(meta, frames, 16, (48, 32), 8)
    # Looping: the last frame is one smooth step from the first, which is far from the middle.
    steps = [mean_abs(frames[i + 1], frames[i]) for i in range(len(frames) - 1)]
    wrap = mean_abs(frames[-1], frames[0])
    assert wrap < 1.25 * max(steps)
    assert wrap < 0.5 * mean_abs(frames[len(frames) // 2], frames[0])
    assert min(steps) > 0.5  # it moves
    _, other = decode(b)
    assert mean_abs(other, frames) < 1.0
    assert sorted(tmp_path.iterdir()) == [a, b]  # no temp files left behind


def _scale_separated_generator(resolution: int) -> networks.Generator:
    """A random generator whose fine layers get their structure from (fixed) noise alone.

    Untrained, every coarse feature feeds every finer convolution at random, so there is
    no division of labour between scales to observe; training makes the fine layers add
    detail at their own scale. Zeroing the weight of the first fine convolution and
    feeding it noise builds that division in, so the videos can be checked for moving the
    intended layers.
    """
    G = tiny_generator(resolution)
    first_fine = G.synthesis.convs[networks.style_groups(resolution)["fine"][0]]
    first_fine.conv.weight.assign(tf.zeros_like(first_fine.conv.weight))
    first_fine.noise_strength.assign(1.0)
    return G


def _low_high_change(frames: np.ndarray) -> float:
    """Energy of the change over time at low spatial frequencies over that at high ones."""
    res = frames.shape[1]
    power = np.abs(np.fft.fft2(frames - frames.mean(0), axes=(1, 2))) ** 2
    f = np.abs(np.fft.fftfreq(res)) * res
    radius = np.maximum(f[:, None], f[None, :])
    return float(power[:, radius <= res / 8].sum() / power[:, radius > res / 4].sum())


def test_style_mixing_coarse_moves_layout_and_keeps_fine_detail(tmp_path):
    res = 32
    G = _scale_separated_generator(res)
    kw = dict(duration=2, fps=8, smoothing_sec=0.5, seed=0, psi=1.0, batch=16, crf=10)
    coarse = videos.style_mixing_video(G, tmp_path / "coarse.mp4", kind="coarse", destinations=2, **kw)
    fine = videos.style_mixing_video(G, tmp_path / "fine.mp4", kind="fine", **kw)
    assert coarse["layers"] == [0, networks.style_groups(res)["coarse"][1]]
    assert fine["layers"] == [networks.style_groups(res)["fine"][0], G.num_ws]
    meta_c, frames_c = decode(tmp_path / "coarse.mp4")
    meta_f, frames_f = decode(tmp_path / "fine.mp4")
    assert_stream(meta_c, frames_c, 16, (3 * res, res), 8)
    assert_stream(meta_f, frames_f, 16, (2 * res, res), 8)  # one destination by default for fine
    # The same moving source face on the left of both.
    source = frames_c[:, :, :res]
    assert mean_abs(source, frames_f[:, :, :res]) < 2.0
    assert mean_abs(source[0], source[len(source) // 2]) > 5.0
    # Destinations take the source's coarse styles only: they stay themselves, and their
    # change over time is mostly at low frequencies (layout), while the fine video's is not.
    fine_change = _low_high_change(frames_f[:, :, res:])
    assert fine_change < 1.5
    for d in range(2):
        dest = frames_c[:, :, (d + 1) * res:(d + 2) * res]
        assert mean_abs(dest[0], dest[len(dest) // 2]) > 2.0
        assert mean_abs(dest, source) > 10.0
        assert _low_high_change(dest) > 2.5 * fine_change


def test_style_mixing_refuses_unknown_kind(tmp_path):
    with pytest.raises(SetupError, match="kind"):
        videos.style_mixing_video(tiny_generator(16), tmp_path / "x.mp4", kind="medium", duration=1, fps=4)


# ----- training progress ------------------------------------------------------------------


COLOURS = [(230, 30, 30), (30, 200, 40), (40, 60, 220), (240, 220, 40), (200, 40, 220), (40, 220, 220)]


def _grid(path: Path, colour: tuple[int, int, int], size: tuple[int, int]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)
    return path


def test_progress_video_orders_rounds_and_kimg_and_reports_bad_rows(tmp_path, monkeypatch):
    r0, r1 = tmp_path / "round-0", tmp_path / "round-1"
    g = [_grid(r0 / "frames" / f"g{i}.png", COLOURS[i], (100, 60)) for i in range(3)]
    corrupt = r0 / "frames" / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    # Rows out of order; one path relative to the TSV, one absolute, one bad kimg, one missing.
    write_tsv(r0 / "frames.tsv", [
        {"kimg": "8.000", "path": g[2]},
        {"kimg": "0.000", "path": "frames/g0.png"},
        {"kimg": "6.000", "path": corrupt},
        {"kimg": "x", "path": g[1]},
        {"kimg": "4.000", "path": g[1]},
        {"kimg": "5.000", "path": r0 / "frames" / "gone.png"},
    ], ["kimg", "path"])
    # A later round restarts at kimg 0, with bigger grids; paths relative to the run's directory.
    monkeypatch.chdir(tmp_path)
    for i in (3, 4):
        _grid(r1 / "frames" / f"g{i}.png", COLOURS[i], (200, 120))
    write_tsv(r1 / "frames.tsv", [{"kimg": "4.000", "path": "round-1/frames/g4.png"},
                                  {"kimg": "0.000", "path": "round-1/frames/g3.png"}], ["kimg", "path"])
    out = tmp_path / "videos" / "training-progress.mp4"
    info = videos.progress_video([r0 / "frames.tsv", r1 / "frames.tsv"], out, fps_in=4, fps_out=10)
    # Six slots (the corrupt grid keeps the previous one on screen), 2.5 output frames each.
    assert info["grids"] == 6 and info["frames"] == 15 and info["size"] == [50, 30]
    assert sorted(r["reason"] for r in info["skipped"]) == ["bad_kimg", "missing", "undecodable"]
    assert {r["tsv"] for r in info["skipped"]} == {str(r0 / "frames.tsv")}
    meta, frames = decode(out)
    assert_stream(meta, frames, 15, (50, 30), 10)
    shown = [0, 1, 1, 2, 3, 4]  # grid colour per slot, kimg order, round 0 then round 1
    for j, frame in enumerate(frames):
        expected = COLOURS[shown[int(j * 4 / 10)]]
        assert np.abs(frame[18:-4, 4:-4].mean((0, 1)) - expected).max() < 12, j  # below the caption
    # each slot carries its round and kimg in a dark band at the top, which changes with them
    # (the corrupt grid's slot shows the grid before it, under its own kimg)
    bands = [frames[math.ceil(slot * 10 / 4)][:12].astype(int) for slot in range(6)]
    assert all(band.mean() < 100 for band in bands)
    assert all(np.abs(a - b).mean() > 1 for a, b in zip(bands, bands[1:]))


def test_progress_video_without_readable_grids_fails_clearly(tmp_path):
    write_tsv(tmp_path / "frames.tsv", [{"kimg": "0", "path": tmp_path / "gone.png"}], ["kimg", "path"])
    with pytest.raises(SetupError, match="no readable fakes grid"):
        videos.progress_video([tmp_path / "frames.tsv"], tmp_path / "p.mp4")
    assert not (tmp_path / "p.mp4").exists()
