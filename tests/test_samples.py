"""samples: the same seed and psi give the same PNG bytes, whatever else is in the batch."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image

from ganflow import latents, media, networks, samples
from ganflow.runlog import SetupError


def tiny_generator(resolution: int) -> networks.Generator:
    """A few-channel generator whose noise and w_avg matter (both start at zero in a new net)."""
    G = networks.Generator(resolution=resolution, z_dim=8, w_dim=8, mapping_layers=2, channel_base=128,
                           channel_max=16)
    rng = np.random.default_rng(resolution)
    for conv in G.synthesis.convs:
        conv.noise_strength.assign(0.5)
    G.mapping.w_avg.assign(rng.standard_normal(8).astype(np.float32))
    return G


@pytest.fixture(scope="module")
def G() -> networks.Generator:
    return tiny_generator(16)


def _bytes(paths) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in paths}


@pytest.mark.parametrize("noise_mode", ["const", "random"])
def test_same_seed_same_bytes_whatever_the_batch(tmp_path, G, noise_mode):
    first = _bytes(samples.make_samples(G, [3, 7, 11], 0.7, tmp_path / "a", tmp_path / "a.png",
                                        noise_mode=noise_mode, batch_size=4))
    again = _bytes(samples.make_samples(G, [3, 7, 11], 0.7, tmp_path / "b", tmp_path / "b.png",
                                        noise_mode=noise_mode, batch_size=4))
    assert first == again and list(first) == ["seed000003.png", "seed000007.png", "seed000011.png"]
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()
    # seed 7 first in a batch of 2, then third in a batch of 3
    other = _bytes(samples.make_samples(G, [7, 1], 0.7, tmp_path / "c", tmp_path / "c.png",
                                        noise_mode=noise_mode, batch_size=2))
    mixed = _bytes(samples.make_samples(G, [5, 9, 7, 2], 0.7, tmp_path / "d", tmp_path / "d.png",
                                        noise_mode=noise_mode, batch_size=3))
    assert other["seed000007.png"] == mixed["seed000007.png"] == first["seed000007.png"]
    pixels = {name: np.asarray(Image.open(tmp_path / "a" / name)) for name in first}
    assert len({p.tobytes() for p in pixels.values()}) == 3, "different seeds must give different images"


def test_noise_and_psi_change_the_image(tmp_path, G):
    def one(**kwargs) -> np.ndarray:
        out = tmp_path / str(len(list(tmp_path.iterdir())))
        [path] = samples.make_samples(G, [4], kwargs.pop("psi", 0.7), out, out / "grid.png", **kwargs)
        return np.asarray(Image.open(path))

    const, random, none = one(noise_mode="const"), one(noise_mode="random"), one(noise_mode="none")
    assert not np.array_equal(const, random) and not np.array_equal(const, none)
    assert not np.array_equal(one(psi=1.0), one(psi=0.5))


def test_psi_zero_gives_every_seed_the_average_image(tmp_path, G):
    paths = samples.make_samples(G, [0, 1, 2], 0.0, tmp_path / "s", tmp_path / "g.png")
    assert len({p.read_bytes() for p in paths}) == 1


def test_grid_and_stale_files(tmp_path, G):
    out = tmp_path / "s"
    samples.make_samples(G, "0-4", 0.7, out, tmp_path / "grid.png")
    grid = Image.open(tmp_path / "grid.png")
    assert grid.size == (3 * 16, 2 * 16)  # 5 cells: 5x1 is too wide, so ceil(sqrt(5)) = 3 columns, 2 rows
    cell = np.asarray(grid)[16:32, 16:32]  # row 1, column 1: the fifth seed
    assert np.array_equal(cell, np.asarray(Image.open(out / "seed000004.png")))
    samples.make_samples(G, [2, 3], 0.7, out, tmp_path / "grid.png", grid_cell=8)
    assert sorted(p.name for p in out.iterdir()) == ["seed000002.png", "seed000003.png"]
    assert Image.open(tmp_path / "grid.png").size == (2 * 8, 8)


def test_parse_seeds():
    assert latents.parse_seeds("0-3, 7") == [0, 1, 2, 3, 7]
    assert latents.parse_seeds(5) == [5]
    assert latents.parse_seeds([1, "4-5"]) == [1, 4, 5]
    for bad in ("3-1", "x", "-2", "", [2 ** 32]):
        with pytest.raises(SetupError):
            latents.parse_seeds(bad)


def test_latents_do_not_depend_on_the_other_seeds():
    a = latents.seed_z([5, 6], 8)
    b = latents.seed_z([6], 8)
    assert a.shape == (2, 8) and a.dtype == np.float32
    assert np.array_equal(a[1], b[0]) and not np.array_equal(a[0], a[1])
    assert np.allclose(a[0], np.random.RandomState(5).randn(8))  # the classic scripts' seed convention


def test_tile_fills_missing_cells():
    images = np.arange(3 * 2 * 2 * 3, dtype=np.uint8).reshape(3, 2, 2, 3)
    canvas = media.tile(images, 2, fill=7)
    assert canvas.shape == (4, 4, 3)
    assert np.array_equal(canvas[:2, 2:], images[1]) and np.array_equal(canvas[2:, :2], images[2])
    assert (canvas[2:, 2:] == 7).all()


@pytest.mark.parametrize("n, shape", [(32, (8, 4)), (36, (6, 6)), (6, (3, 2)), (12, (4, 3)), (5, (3, 2)),
                                      (7, (3, 3)), (1, (1, 1)), (64, (8, 8))])
def test_grid_shape_follows_the_count(n, shape):
    cols = media.grid_columns(n)
    assert (cols, math.ceil(n / cols)) == shape
