"""The StyleGAN papers' qualitative figures for any generator, at any resolution.

Every image in a figure is a seed's image (latents.seed_z), so any cell can be
regenerated alone with the samples rule. Layer ranges come from one place,
networks.style_groups: coarse styles drive the 4-8px layers, middle 16-32px, fine 64px
and up, as in the paper; a model under 64px, which has no such scales to spare, splits
its w indices into thirds instead. Synthesis layer i (its noise input) is driven by w
index i, so the noise figures split the layers with the same helper. Grid sizes
depend only on the resolution and the counts given, never on the pixels; every figure is
then enlarged to readable cells and labelled (annotate.py), rows and columns named. Seed settings
take whatever latents.parse_seeds takes (a list, "0-3", ...).
"""

from __future__ import annotations

import inspect
import logging
import os
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
from PIL import Image

from . import networks
from .annotate import labelled_grid
from .runlog import SetupError
from .latents import (DEFAULT_PSI, map_latents, parse_seeds, random_noise, render, seed_noise, seed_z,
                      synthesize_batches)
from .media import save_png, tile
from .names import FIGURE_NAMES

log = logging.getLogger(__name__)

TRUNCATION_PSIS = (1.0, 0.7, 0.5, 0.25, 0.0, -0.25, -0.5, -1.0)
GROUPS = ("coarse", "middle", "fine")
WHITE = 255
UNCURATED_LODS = (0, 1, 2, 2, 3, 3)
MIN_TILE = 16  # px: smaller thumbnails in the uncurated figure are colour blobs, left out


def _resize(pixels: np.ndarray, size: int, resample: int = Image.LANCZOS) -> np.ndarray:
    img = Image.fromarray(pixels)
    return pixels if img.size == (size, size) else np.asarray(img.resize((size, size), resample))


def uncurated(G: networks.Generator, out_png: str | os.PathLike, *, seed: int = 0, rows: int = 3,
              lods: Sequence[int] = UNCURATED_LODS, psi: float = DEFAULT_PSI) -> Path:
    """Columns of images at full size, 1/2, 1/4... (one column per entry of lods, 2**lod
    times as many images per column as `rows`), as in the paper's figure 2; columns whose
    thumbnails would be under MIN_TILE px are left out. Grid: sum(res >> lod) x rows*res,
    enlarged to readable cells. Image k is seed `seed + k`."""
    res = G.resolution
    if any(lod < 0 or res >> lod < 1 for lod in lods):
        raise SetupError(f"figure uncurated: lods {list(lods)} must lie in 0..{res.bit_length() - 1} "
                         f"for a {res}px model; lower the largest lod")
    kept = [lod for lod in lods if lod == 0 or res >> lod >= MIN_TILE]
    if kept != list(lods):
        log.info("figure uncurated: a %dpx model leaves out lods %s (thumbnails under %d px)", res,
                 sorted(set(lods) - set(kept)), MIN_TILE)
    lods = kept
    counts = [rows << lod for lod in lods]
    images = render(G, map_latents(G, seed_z(range(seed, seed + sum(counts)), G.z_dim), psi))
    canvas = np.full((rows * res, sum(res >> lod for lod in lods), 3), WHITE, np.uint8)
    k, x = 0, 0
    for lod, count in zip(lods, counts):
        size = res >> lod
        column = np.stack([_resize(img, size) for img in images[k:k + count]])
        canvas[:, x:x + size] = tile(column, 1)
        k, x = k + count, x + size
    return save_png(labelled_grid(canvas, res, res), out_png)


def style_mixing(G: networks.Generator, out_png: str | os.PathLike, *, src_seeds: Sequence[int] = (1, 2, 3),
                 dst_seeds: Sequence[int] = (10, 11, 12, 13, 14), psi: float = DEFAULT_PSI) -> Path:
    """Destination images across the top, source images down the left; a cell is its
    destination with the source's styles at one range. One band of source rows per
    non-empty range (coarse, middle, fine). Grid: (1 + len(dst)) res x (1 + bands *
    len(src)) res, top-left corner blank; columns labelled with the destination seeds,
    rows with the range and source seed."""
    res, groups = G.resolution, networks.style_groups(G.resolution)
    src_seeds, dst_seeds = parse_seeds(src_seeds), parse_seeds(dst_seeds)
    names = [g for g in GROUPS if groups[g][1] > groups[g][0]]
    bands = [groups[g] for g in names]
    src = map_latents(G, seed_z(src_seeds, G.z_dim), psi)
    dst = map_latents(G, seed_z(dst_seeds, G.z_dim), psi)
    mixed = []
    for start, stop in bands:
        for s in src:
            ws = dst.copy()
            ws[:, start:stop] = s[start:stop]
            mixed.append(ws)
    blank = np.full((1, res, res, 3), WHITE, np.uint8)
    top = np.concatenate([blank, render(G, dst)])
    src_images = render(G, src)
    cells = render(G, np.concatenate(mixed)).reshape(-1, len(dst_seeds), res, res, 3)
    left = np.concatenate([src_images] * len(bands))
    grid = [top] + [np.concatenate([left[r:r + 1], cells[r]]) for r in range(len(left))]
    canvas = tile(np.concatenate(grid), len(dst_seeds) + 1)
    return save_png(labelled_grid(canvas, res, res, col_labels=["source"] + [f"seed {d}" for d in dst_seeds],
                                  row_labels=["destination"] + [f"{g} of {s}" for g in names for s in src_seeds]),
                    out_png)


def noise_detail(G: networks.Generator, out_png: str | os.PathLike, *, seeds: Sequence[int] = (0, 1, 2),
                 draws: int = 100, psi: float = DEFAULT_PSI) -> Path:
    """Per seed one row: the image, a 2x2 block of its centre (a res/4 square, zoomed 2x)
    under four noise draws, and the per-pixel standard deviation over `draws` draws. The
    deviation map is scaled by the largest deviation in the figure, so rows compare.
    Grid: 3 res x len(seeds) res (the seed's noise draws are samples' 'random' noise,
    draw 0 first)."""
    res = G.resolution
    if draws < 4:
        raise SetupError(f"figure noise_detail needs at least 4 noise draws, got {draws}; raise draws")
    seeds, c, shapes = parse_seeds(seeds), res // 4, G.synthesis.noise_shapes
    lo = (res - c) // 2
    rows, stds = [], []
    for seed, ws in zip(seeds, map_latents(G, seed_z(seeds, G.z_dim), psi)):
        total = np.zeros((res, res, 3), np.float64)
        square = np.zeros((res, res, 3), np.float64)
        shown: list[np.ndarray] = []

        def draw(i: int, seed: int = seed) -> list[np.ndarray]:
            return seed_noise(shapes, seed, i)

        for batch in synthesize_batches(G, np.repeat(ws[None], draws, 0), noise=draw):
            total += batch.sum(0)
            square += np.square(batch, dtype=np.float64).sum(0)
            shown.extend(networks.to_uint8(batch[:4 - len(shown)]))
        mean = total / draws
        stds.append(np.sqrt(np.maximum(square / draws - mean ** 2, 0.0)).mean(-1))
        crops = np.stack([_resize(img[lo:lo + c, lo:lo + c], res // 2, Image.NEAREST) for img in shown])
        rows.append((shown[0], tile(crops, 2)))
    scale = max(float(np.max(stds)), 1e-8)
    canvas = []
    for (image, crops), std in zip(rows, stds):
        gray = np.clip(np.rint(std / scale * 255.0), 0, 255).astype(np.uint8)
        canvas.append(np.concatenate([image, crops, np.repeat(gray[..., None], 3, -1)], axis=1))
    return save_png(labelled_grid(np.concatenate(canvas), res, res,
                                  col_labels=["image", "4 noises", f"std of {draws}"],
                                  row_labels=[f"seed {s}" for s in seeds]), out_png)


def noise_layers(resolution: int) -> dict[str, list[bool]]:
    """Which synthesis layers get noise in each panel of the noise-components figure:
    all, none, fine only (the fine style range), coarse only (every layer below it)."""
    fine = networks.style_groups(resolution)["fine"][0]
    n = networks.num_ws_for(resolution) - 1  # one noise input per conv; the last w feeds only toRGB
    return {"all": [True] * n, "none": [False] * n,
            "fine": [i >= fine for i in range(n)], "coarse": [i < fine for i in range(n)]}


def noise_components(G: networks.Generator, out_png: str | os.PathLike, *, seeds: Sequence[int] = (0, 1, 2),
                     psi: float = DEFAULT_PSI) -> Path:
    """Per seed one row of four panels with one noise draw applied to all / no / fine /
    coarse layers (the paper's figure 5). Grid: 4 res x len(seeds) res."""
    panels, seeds = noise_layers(G.resolution), parse_seeds(seeds)
    ws = map_latents(G, seed_z(seeds, G.z_dim), psi)
    noise = random_noise(G, seeds)

    def masked(mask: list[bool]) -> Callable[[int], list[np.ndarray]]:
        return lambda i: [n if on else np.zeros_like(n) for n, on in zip(noise(i), mask)]

    images = [render(G, ws, noise=masked(mask)) for mask in panels.values()]
    canvas = tile(np.stack(images, 1).reshape(-1, *images[0].shape[1:]), len(panels))
    return save_png(labelled_grid(canvas, G.resolution, G.resolution,
                                  col_labels=[f"{name} noise" for name in panels],
                                  row_labels=[f"seed {s}" for s in seeds]), out_png)


def truncation(G: networks.Generator, out_png: str | os.PathLike, *, seeds: Sequence[int] = (0, 1, 2, 3),
               psis: Sequence[float] = TRUNCATION_PSIS) -> Path:
    """Seeds down, psi values across: w_avg + psi (w - w_avg). The psi=0 column is the
    average image for every seed. Grid: len(psis) res x len(seeds) res."""
    seeds = parse_seeds(seeds)
    z = seed_z(seeds, G.z_dim)
    columns = [render(G, map_latents(G, z, p)) for p in psis]
    canvas = tile(np.stack(columns, 1).reshape(-1, *columns[0].shape[1:]), len(psis))
    return save_png(labelled_grid(canvas, G.resolution, G.resolution, col_labels=[f"psi {p:g}" for p in psis],
                                  row_labels=[f"seed {s}" for s in seeds]), out_png)


# Each figure is the function of its name (names.FIGURE_NAMES, which the rules expand).
FIGURES: dict[str, Callable[..., Path]] = {name: globals()[name] for name in FIGURE_NAMES}


def make_figures(G: networks.Generator, out_dir: str | os.PathLike, *, psi: float = DEFAULT_PSI,
                 settings: Mapping[str, Mapping[str, Any]] | None = None,
                 names: Sequence[str] | None = None) -> dict[str, Path]:
    """The figures `names` (default: all) as out_dir/<name>.png; settings[name] holds that
    figure's keyword arguments; `psi` goes to every figure that takes one (truncation
    sweeps its own), unless the figure's settings give another."""
    settings = settings or {}
    unknown = sorted((set(settings) | set(names or ())) - set(FIGURES))
    if unknown:
        raise SetupError(f"figure {unknown[0]!r} is not known; the figures are {', '.join(FIGURES)}")
    out = {}
    for name in names or FIGURES:
        fn = FIGURES[name]
        common = {"psi": psi} if "psi" in inspect.signature(fn).parameters else {}
        out[name] = fn(G, Path(out_dir) / f"{name}.png", **{**common, **settings.get(name, {})})
        log.info("figure %s: %s", name, out[name])
    return out
