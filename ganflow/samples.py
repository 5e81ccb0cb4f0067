"""Images from seeds: one PNG per seed plus a grid, the same bytes on every rerun.

A seed fixes everything that goes into its image: z is `RandomState(seed).randn(z_dim)`
(the convention of the classic StyleGAN scripts, so seed numbers carry over), and the
noise is either the generator's saved constant noise or, with noise_mode 'random', drawn
from a generator keyed by (seed, draw). Generation runs in batches of a fixed size (the
last one padded), so the arithmetic an image goes through does not depend on which other
seeds share its batch. figures.py builds on the same helpers.
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
import tensorflow as tf
from PIL import Image

from . import networks
from .runlog import SetupError, progress
from .tables import atomic_path, remove_stale

log = logging.getLogger(__name__)

NoiseFn = Callable[[int], list[np.ndarray]]
MAX_SEED = 2 ** 32 - 1  # RandomState's limit
DEFAULT_PSI = 0.7  # truncation of samples, figures and videos (the config's `psi`)


def parse_seeds(spec: int | str | Sequence[int | str]) -> list[int]:
    """Seeds from a config value: 7, "0-63", "1,5,10-12" or a list of those (ranges inclusive)."""
    if isinstance(spec, (int, np.integer)) and not isinstance(spec, bool):
        parts: list = [int(spec)]
    elif isinstance(spec, str):
        parts = [p.strip() for p in spec.split(",") if p.strip()]
    else:
        parts = list(spec)
    seeds: list[int] = []
    for part in parts:
        text = str(part).strip()
        lo, dash, hi = text.partition("-") if not text.startswith("-") else (text, "", "")
        try:
            a = int(lo)
            b = int(hi) if dash else a
        except ValueError:
            raise SetupError(f"seed {text!r} is not a number or a range like 0-63; fix the seeds setting") from None
        if not 0 <= a <= b <= MAX_SEED:
            raise SetupError(f"seed range {text!r} must be increasing and within 0..{MAX_SEED}; "
                             "fix the seeds setting")
        seeds.extend(range(a, b + 1))
    if not seeds:
        raise SetupError(f"the seeds setting {spec!r} names no seed; give e.g. 0-63")
    return seeds


def latents(seeds: Sequence[int], z_dim: int) -> np.ndarray:
    """[N, z_dim] float32, one independent draw per seed."""
    return np.stack([np.random.RandomState(s).randn(z_dim) for s in seeds]).astype(np.float32)


def seed_noise(shapes: Sequence[tuple[int, int, int]], seed: int, draw: int = 0) -> list[np.ndarray]:
    """One noise realisation per synthesis layer for (seed, draw), each [H, W, 1] float32."""
    rng = np.random.default_rng([seed, draw])
    return [rng.standard_normal(s, dtype=np.float32) for s in shapes]


def _pad(x: np.ndarray, n: int) -> np.ndarray:
    if len(x) == n:
        return x
    return np.concatenate([x, np.zeros((n - len(x), *x.shape[1:]), x.dtype)])


def map_latents(G: networks.Generator, z: np.ndarray, psi: float = 1.0, *,
                batch_size: int = 16) -> np.ndarray:
    """ws [N, num_ws, w_dim] for latents z, truncated towards w_avg by psi."""
    out = []
    for i in range(0, len(z), batch_size):
        part = z[i:i + batch_size]
        ws = G.mapping(tf.constant(_pad(part, batch_size)), psi=float(psi))
        out.append(np.asarray(ws)[:len(part)])
    return np.concatenate(out) if out else np.zeros((0, G.num_ws, G.w_dim), np.float32)


def synthesize_batches(G: networks.Generator, ws: np.ndarray, *, noise_mode: str = "const",
                       noise: NoiseFn | None = None, batch_size: int = 16) -> Iterator[np.ndarray]:
    """Float images [n, H, W, 3] in [-1, 1] per batch of ws.

    `noise(i)` gives image i's per-layer noise (overriding noise_mode); it is called per
    batch, so a figure with many noise draws never holds all of them at once.
    """
    shapes = G.synthesis.noise_shapes
    for i in range(0, len(ws), batch_size):
        part = ws[i:i + batch_size]
        layers = None
        if noise is not None:
            per_image = [noise(k) for k in range(i, i + len(part))]
            layers = [tf.constant(_pad(np.stack([n[j] for n in per_image]), batch_size))
                      for j in range(len(shapes))]
        images = G.synthesis(tf.constant(_pad(part, batch_size)), noise_mode=noise_mode, noise=layers)
        yield np.asarray(images)[:len(part)]


def render(G: networks.Generator, ws: np.ndarray, **kwargs) -> np.ndarray:
    """uint8 images of synthesize_batches, converted per batch: a figure of a hundred
    1024px images would otherwise hold a gigabyte of float copies."""
    res = G.resolution
    batches = [networks.to_uint8(b) for b in synthesize_batches(G, ws, **kwargs)]
    return np.concatenate(batches) if batches else np.zeros((0, res, res, 3), np.uint8)


def random_noise(G: networks.Generator, seeds: Sequence[int], draw: int = 0) -> NoiseFn:
    """A NoiseFn giving image i the noise of (seeds[i], draw)."""
    shapes = G.synthesis.noise_shapes
    return lambda i: seed_noise(shapes, seeds[i], draw)


def tile(images: np.ndarray, cols: int, fill: int = 255) -> np.ndarray:
    """uint8 [N, H, W, 3] -> one [rows*H, cols*W, 3] canvas, row-major; empty cells `fill`."""
    n, h, w, c = images.shape
    rows = max(1, math.ceil(n / cols))
    cells = np.full((rows * cols, h, w, c), fill, np.uint8)
    cells[:n] = images
    return cells.reshape(rows, cols, h, w, c).transpose(0, 2, 1, 3, 4).reshape(rows * h, cols * w, c)


def grid_columns(n: int, max_aspect: float = 3.0) -> int:
    """Columns for a grid of n cells: the divisor of n nearest above sqrt(n) whose grid is no
    wider than `max_aspect` (32 -> 8x4, 36 -> 6x6: no blank cells), else ceil(sqrt(n))."""
    for cols in range(math.ceil(math.sqrt(n)), n + 1):
        if n % cols == 0 and cols / (n // cols) <= max_aspect:
            return cols
    return math.ceil(math.sqrt(n))


def save_png(pixels: np.ndarray, path: str | os.PathLike) -> Path:
    """Write uint8 HWC RGB as PNG atomically (PNG: identical pixels give identical bytes)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        Image.fromarray(pixels).save(tmp, format="PNG")
    return path


def sample_name(seed: int) -> str:
    return f"seed{seed:06d}.png"


def make_samples(G: networks.Generator, seeds: Sequence[int] | str | int, psi: float,
                 out_dir: str | os.PathLike, grid_png: str | os.PathLike, *, noise_mode: str = "const",
                 batch_size: int = 16, grid_max: int = 64, grid_cell: int = 256) -> list[Path]:
    """Write seedNNNNNN.png per seed into out_dir (removing other seeds' PNGs left by an
    earlier config) and a grid of the first `grid_max` seeds, cells at most `grid_cell` px.

    noise_mode 'const' uses the generator's saved noise, 'random' the seed's own draw,
    'none' no noise; all three are reproducible.
    """
    if noise_mode not in networks.NOISE_MODES:
        raise SetupError(f"samples noise_mode is {noise_mode!r}; use one of {', '.join(networks.NOISE_MODES)}")
    seeds = parse_seeds(seeds)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    cell = min(G.resolution, grid_cell)
    paths: list[Path] = []
    cells: list[np.ndarray] = []
    for i in progress(range(0, len(seeds), batch_size), desc="samples", unit="batch"):
        chunk = seeds[i:i + batch_size]
        ws = map_latents(G, latents(chunk, G.z_dim), psi, batch_size=batch_size)
        noise = random_noise(G, chunk) if noise_mode == "random" else None
        images = render(G, ws, noise_mode=noise_mode, noise=noise, batch_size=batch_size)
        for seed, pixels in zip(chunk, images):
            paths.append(save_png(pixels, out_dir / sample_name(seed)))
            if len(cells) < grid_max:
                img = Image.fromarray(pixels)
                cells.append(np.asarray(img if cell == G.resolution else img.resize((cell, cell), Image.LANCZOS)))
    remove_stale(out_dir, {p.name for p in paths}, ["seed*.png"])
    save_png(tile(np.stack(cells), grid_columns(len(cells))), grid_png)
    log.info("wrote %d samples (psi %g, noise %s) to %s; grid of %d in %s",
             len(paths), psi, noise_mode, out_dir, len(cells), grid_png)
    return paths
