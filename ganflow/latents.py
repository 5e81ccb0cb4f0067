"""Seeds to z to w, w files and directions in W: the latent conventions every stage
after training shares, so a seed or a w.npz means the same image in samples, figures,
videos, projections, edits and the explorer.

A seed fixes everything that goes into its image: z is `RandomState(seed).randn(z_dim)`
(the convention of the classic StyleGAN scripts, so seed numbers carry over), and the
noise is either the generator's saved constant noise or, with noise_mode 'random', drawn
from a generator keyed by (seed, draw). Generation runs in batches of a fixed size (the
last one padded), so the arithmetic an image goes through does not depend on which other
seeds share its batch.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
import tensorflow as tf

from . import networks
from .config import defaults
from .runlog import SetupError
from .tables import load_npz, save_npz

NoiseFn = Callable[[int], list[np.ndarray]]
W_SAMPLES_SEED = 123  # z draws that estimate the mean w and the spread of W
DEFAULT_PSI = defaults()["psi"]  # truncation of samples, figures and videos (config/schema.yaml)
MAX_SEED = 2 ** 32 - 1  # RandomState's limit


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


def seed_z(seeds: Sequence[int], z_dim: int) -> np.ndarray:
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


def seed_images(G: networks.Generator, seeds: Sequence[int], psi: float, *, noise_mode: str = "const",
                batch_size: int = 16) -> Iterator[tuple[Sequence[int], np.ndarray]]:
    """(seeds, uint8 images) a batch at a time: each seed's image truncated by psi, its noise
    the generator's constant one, the seed's own draw ('random') or none."""
    for i in range(0, len(seeds), batch_size):
        chunk = seeds[i:i + batch_size]
        ws = map_latents(G, seed_z(chunk, G.z_dim), psi, batch_size=batch_size)
        noise = random_noise(G, chunk) if noise_mode == "random" else None
        yield chunk, render(G, ws, noise_mode=noise_mode, noise=noise, batch_size=batch_size)


def seed_ws(G: networks.Generator, seeds: Sequence[int], psi: float) -> np.ndarray:
    """ws [N, num_ws, w_dim] of the seeds' images, truncated by psi, as samples are made."""
    return map_latents(G, seed_z(seeds, G.z_dim), psi)


@dataclass
class Directions:
    """Named unit directions in W, each with its scale and the w indices [start, stop) it moves."""

    names: list[str]
    vectors: np.ndarray   # [k, w_dim]
    scales: np.ndarray    # [k]
    layers: np.ndarray    # [k, 2]

    def index(self, name: str) -> int:
        if name not in self.names:
            raise SetupError(f"direction {name!r} is not known; there are {', '.join(self.names)}")
        return self.names.index(name)

    def shift(self, ws: np.ndarray, name: str, strength: float) -> np.ndarray:
        """ws [..., num_ws, w_dim] moved `strength` scales along the direction, on its layers only."""
        k = self.index(name)
        start, stop = self.layers[k]
        out = np.array(ws, np.float32)
        out[..., start:stop, :] += np.float32(strength * self.scales[k]) * self.vectors[k].astype(np.float32)
        return out


def save_directions(d: Directions, path: str | os.PathLike) -> Path:
    """One npz per method, read by the figure, video and edit rules and the command line."""
    return save_npz(path, {"names": np.array(d.names), "vectors": d.vectors.astype(np.float32),
                           "scales": d.scales.astype(np.float32), "layers": d.layers.astype(np.int64)})


def load_directions(path: str | os.PathLike) -> Directions:
    """A directions file; anything else is a broken setup."""
    data = load_npz(path, "directions")
    if not {"names", "vectors", "scales", "layers"} <= data.keys():
        raise SetupError(f"{path} is not a ganflow directions file; rebuild it with an edit rule")
    return Directions([str(n) for n in data["names"]], data["vectors"], data["scales"], data["layers"])


def w_samples(G: networks.Generator, n: int, seed: int = W_SAMPLES_SEED) -> np.ndarray:
    """w [n, w_dim] (float64) of n z draws, untruncated."""
    z = np.random.RandomState(seed).randn(n, G.z_dim).astype(np.float32)
    return np.concatenate([np.asarray(G.mapping(tf.constant(z[i:i + 1024])))[:, 0]
                           for i in range(0, n, 1024)]).astype(np.float64)


def load_w(path: str | os.PathLike, G: networks.Generator) -> tuple[np.ndarray, list[np.ndarray] | None]:
    """ws [num_ws, w_dim] of a projection's w.npz (or any npz with 'w' [1, num_ws, w_dim] or
    [w_dim], as the official projector writes), and its noise if it kept one."""
    data = load_npz(path, "projection")
    if "w" not in data:
        raise SetupError(f"{path} holds no array 'w'; give a projection's w.npz")
    w = np.asarray(data["w"], np.float32)
    w = np.broadcast_to(w.reshape(-1, w.shape[-1]), (G.num_ws, w.shape[-1])) if w.size == w.shape[-1] else w
    w = w.reshape(-1, w.shape[-1])
    if w.shape != (G.num_ws, G.w_dim):
        raise SetupError(f"{path} holds w of shape {w.shape}, but this generator takes ({G.num_ws}, {G.w_dim}); "
                         "project with the same run")
    noise = [data[f"noise_{i}"] for i in range(len(G.synthesis.noise_shapes))] if "noise_0" in data else None
    return np.array(w), noise
