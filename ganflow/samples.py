"""Images from seeds: one PNG per seed plus a grid, the same bytes on every rerun.

What a seed means (its z, its noise, the padded batches) lives in latents.py, which
figures, videos, edits and the explorer share.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from . import networks
from .config import defaults
from .latents import parse_seeds, seed_images
from .media import grid_columns, save_png, tile
from .names import sample_name
from .runlog import SetupError, progress
from .tables import atomic_open, remove_stale

log = logging.getLogger(__name__)

# Defaults of the config sections this module serves (config/schema.yaml).
_DEFAULTS = defaults("samples")


def make_samples(G: networks.Generator, seeds: Sequence[int] | str | int, psi: float,
                 out_dir: str | os.PathLike, grid_png: str | os.PathLike, *,
                 settings_json: str | os.PathLike | None = None, noise_mode: str = _DEFAULTS["noise_mode"],
                 batch_size: int = _DEFAULTS["batch_size"], grid_max: int = _DEFAULTS["grid_max"], grid_cell: int = _DEFAULTS["grid_cell"]) -> list[Path]:
    """Write seedNNNNNN.png per seed into out_dir (removing other seeds' PNGs left by an
    earlier config) and a grid of the first `grid_max` seeds, cells at most `grid_cell` px;
    with `settings_json`, the psi and noise mode they were made with (the explorer starts
    a run's page at that psi).

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
    batches = seed_images(G, seeds, psi, noise_mode=noise_mode, batch_size=batch_size)
    for chunk, images in progress(batches, desc="samples", unit="batch", total=-(-len(seeds) // batch_size)):
        for seed, pixels in zip(chunk, images):
            paths.append(save_png(pixels, out_dir / sample_name(seed)))
            if len(cells) < grid_max:
                img = Image.fromarray(pixels)
                cells.append(np.asarray(img if cell == G.resolution else img.resize((cell, cell), Image.LANCZOS)))
    remove_stale(out_dir, {p.name for p in paths}, ["seed*.png"])
    save_png(tile(np.stack(cells), grid_columns(len(cells))), grid_png)
    if settings_json is not None:
        with atomic_open(settings_json) as fh:
            json.dump({"psi": psi, "noise_mode": noise_mode}, fh, sort_keys=True)
    log.info("wrote %d samples (psi %g, noise %s) to %s; grid of %d in %s",
             len(paths), psi, noise_mode, out_dir, len(cells), grid_png)
    return paths
