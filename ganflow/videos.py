"""Videos of a training run and of a trained generator: training progress, latent walks
and style mixing, encoded as browser-playable H.264 (x264, yuv420p).

Every video is a moviepy VideoClip whose frame function reads from a one-entry cache: a
batch of generator frames (or one fakes grid), so the generator runs in batches while
moviepy pulls single frames and streams them into the ffmpeg that imageio-ffmpeg ships.
Nothing holds more than one batch of frames, and the latent walk computes any frame on
its own, so memory does not grow with the duration.
"""

from __future__ import annotations

import logging
import math
import os
from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import tensorflow as tf
from PIL import Image, ImageOps

from . import networks
from .annotate import caption
from .config import defaults
from .imaging import ImageRejected, load_srgb, to_array
from .latents import DEFAULT_PSI
from .media import encode_batches, encode_video, even, tile_frames
from .runlog import SetupError
from .tables import read_tsv

log = logging.getLogger(__name__)

# Defaults of the config sections this module serves (config/schema.yaml).
_VIDEOS = defaults("videos")
_PROGRESS = defaults("videos.progress")
_INTERPOLATION = defaults("videos.interpolation")
_STYLE_MIXING = defaults("videos.style_mixing")

# Fourier terms whose Gaussian gain is below this are left out of a latent walk.
_WALK_GAIN_FLOOR = 1e-4
# Faces that follow the source's styles when style_mixing_video is not told how many.
DEFAULT_DESTINATIONS = {"coarse": 4, "middle": 4, "fine": 1}


# ----- training progress ------------------------------------------------------------------


def _progress_rows(frames_tsvs: Sequence[str | os.PathLike]
                   ) -> tuple[list[tuple[Path, Path, str]], list[dict[str, str]]]:
    """Fakes grids of every round, rounds in the order given and kimg order within each
    (a round started from another's weights counts its kimg from zero again); each grid
    comes with the TSV that lists it and its on-screen label (round, kimg)."""
    grids: list[tuple[Path, Path, str]] = []
    skipped: list[dict[str, str]] = []
    for number, tsv in enumerate(map(Path, frames_tsvs), 1):
        if not tsv.is_file():
            raise SetupError(f"{tsv} does not exist; run that round's training first")
        rows = read_tsv(tsv)
        if rows and not {"kimg", "path"} <= rows[0].keys():
            raise SetupError(f"{tsv} lacks the columns kimg and path; it is not a training run's frames.tsv")
        good = []
        for row in rows:
            path = row["path"] or ""
            try:
                kimg = float(row["kimg"])
            except (TypeError, ValueError):
                skipped.append({"tsv": str(tsv), "path": path, "reason": "bad_kimg", "detail": str(row["kimg"])})
                continue
            # Relative paths may be relative to the TSV or to the directory training ran in.
            found = next((p for p in (tsv.parent / path, Path(path)) if path and p.is_file()), None)
            if found is None:
                skipped.append({"tsv": str(tsv), "path": path, "reason": "missing", "detail": ""})
                continue
            good.append((kimg, found))
        grids += [(tsv, p, f"round {number}  {kimg:g} kimg") for kimg, p in sorted(good, key=lambda kp: kp[0])]
    return grids, skipped


def progress_video(frames_tsvs: Sequence[str | os.PathLike], out_mp4: str | os.PathLike, *,
                   fps_in: float = _PROGRESS["fps_in"], fps_out: float = _PROGRESS["fps_out"], crf: float = _PROGRESS["crf"], scale: float = _PROGRESS["scale"],
                   tune: str | None = _PROGRESS["tune"], preset: str = _PROGRESS["preset"]) -> dict[str, Any]:
    """The fakes grids of all rounds, each shown for 1/fps_in s in a fps_out video, with its
    round and kimg in the top-left corner.

    Grids that are listed but missing or unreadable are reported in `skipped` (and the
    log) with their reason; an unreadable one keeps the previous grid on screen for its
    slot, so the timeline still matches kimg. Grids of another size are fitted and padded.
    """
    if fps_in <= 0 or fps_out <= 0 or scale <= 0:
        raise SetupError(f"progress video needs fps_in, fps_out and scale above 0, got {fps_in}, {fps_out}, {scale}")
    grids, skipped = _progress_rows(frames_tsvs)

    def reject(row: tuple[Path, Path, str], exc: ImageRejected) -> None:
        tsv, path, _ = row
        skipped.append({"tsv": str(tsv), "path": str(path), "reason": exc.reason, "detail": exc.detail})

    first = None
    while grids and first is None:
        try:
            first = load_srgb(grids[0][1])
        except ImageRejected as exc:
            reject(grids.pop(0), exc)
    for row in skipped:
        log.warning("fakes grid %s left out of the progress video: %s %s", row["path"], row["reason"], row["detail"])
    if first is None:
        raise SetupError(f"no readable fakes grid is listed in {', '.join(map(str, frames_tsvs))}; "
                         "train at least one tick (or fix the files reported above)")
    size = (even(first.width * scale), even(first.height * scale))
    shown = [to_array(ImageOps.pad(first, size, Image.LANCZOS))]

    @lru_cache(maxsize=1)
    def grid(i: int) -> np.ndarray:
        try:
            shown[0] = to_array(ImageOps.pad(load_srgb(grids[i][1]), size, Image.LANCZOS))
        except ImageRejected as exc:
            reject(grids[i], exc)
            log.warning("fakes grid %s shown as the one before it: %s", grids[i][1], exc)
        return caption(shown[0], grids[i][2])

    count = math.ceil(len(grids) * fps_out / fps_in - 1e-9)
    encode_video(lambda j: grid(min(len(grids) - 1, int(j * fps_in / fps_out + 1e-9))), count, fps_out, out_mp4,
            crf=crf, preset=preset, tune=tune)
    return {"frames": count, "grids": len(grids), "size": list(size), "skipped": skipped}


# ----- latent walks -------------------------------------------------------------------------


class LatentWalk:
    """Looping random walk of `shape`-sized latents over `frames` frames: white noise
    smoothed along time by a Gaussian of `sigma` frames with wrap-around, each latent then
    rescaled to norm sqrt(last dim) (the shell where normal latents of that size live).

    Smoothing periodic white noise multiplies its Fourier coefficients, independent
    Gaussians, by the filter's gain exp(-2 pi^2 sigma^2 f^2); drawing the coefficients
    directly gives the same process, needs only the low frequencies the filter passes, and
    yields any frame on its own, so memory stays the same for any duration.
    """

    def __init__(self, frames: int, shape: tuple[int, ...], sigma: float, seed: int) -> None:
        if frames < 2 or sigma <= 0:
            raise SetupError(f"a latent walk needs at least 2 frames and a smoothing above 0, "
                             f"got {frames} frames and sigma {sigma} frames")
        top = min(frames // 2, math.ceil(frames * math.sqrt(-math.log(_WALK_GAIN_FLOOR) / 2) / (math.pi * sigma)))
        k = np.arange(top + 1)
        gain = np.exp(-2.0 * (math.pi * sigma * k / frames) ** 2)
        # A real signal pairs frequency k with -k (twice the power), except 0 and Nyquist.
        gain[1:] *= math.sqrt(2.0)
        if 2 * top == frames:
            gain[top] /= math.sqrt(2.0)
        rng = np.random.default_rng(seed)
        self.coef = rng.standard_normal((2, top + 1, math.prod(shape))) * gain[None, :, None]
        self.freq = k * (2.0 * math.pi / frames)
        self.shape = tuple(shape)

    def __call__(self, t: np.ndarray) -> np.ndarray:
        """Latents at frame indices t: [len(t), *shape] float32."""
        phase = np.asarray(t, dtype=np.float64)[:, None] * self.freq[None, :]
        z = (np.cos(phase) @ self.coef[0] + np.sin(phase) @ self.coef[1]).reshape(len(phase), *self.shape)
        z *= math.sqrt(self.shape[-1]) / np.linalg.norm(z, axis=-1, keepdims=True)
        return z.astype(np.float32)


def _frame_count(duration: float, fps: float) -> int:
    count = int(round(duration * fps))
    if fps <= 0 or count < 2:
        raise SetupError(f"a video of {duration} s at {fps} fps has {count} frames; it needs at least 2")
    return count


def interpolation_video(G: networks.Generator, out_mp4: str | os.PathLike, *, grid: Sequence[int] = _INTERPOLATION["grid"],
                        duration: float = _INTERPOLATION["duration"], fps: float = _INTERPOLATION["fps"], smoothing_sec: float = _INTERPOLATION["smoothing_sec"], seed: int = _INTERPOLATION["seed"],
                        psi: float = DEFAULT_PSI, batch: int = _VIDEOS["batch"], noise_mode: str = _INTERPOLATION["noise_mode"], crf: float = _INTERPOLATION["crf"],
                        preset: str = _INTERPOLATION["preset"], tune: str | None = _INTERPOLATION["tune"]) -> dict[str, Any]:
    """A cols x rows grid of independent looping walks through z; `batch` images per
    generator call. Noise is held fixed ('const') so that only the latents move."""
    cols, rows = (int(v) for v in grid)
    if cols < 1 or rows < 1 or batch < 1:
        raise SetupError(f"interpolation video needs a grid of at least 1x1 and batch >= 1, got {grid}, {batch}")
    count = _frame_count(duration, fps)
    walk = LatentWalk(count, (rows * cols, G.z_dim), smoothing_sec * fps, seed)

    @tf.function
    def synthesise(z: tf.Tensor) -> tf.Tensor:
        return G.synthesis(G.mapping(z, psi=psi), noise_mode=noise_mode)

    def render(t: np.ndarray) -> np.ndarray:
        z = walk(t).reshape(-1, G.z_dim)
        return tile_frames(networks.to_uint8(synthesise(tf.constant(z))), rows * cols, cols)

    encode_batches(render, max(1, batch // (rows * cols)), count, fps, out_mp4, crf=crf, preset=preset, tune=tune)
    return {"frames": count, "size": [cols * G.resolution, rows * G.resolution]}


def style_mixing_video(G: networks.Generator, out_mp4: str | os.PathLike, *, kind: str = "coarse",
                       destinations: int | None = None, duration: float = _STYLE_MIXING["duration"], fps: float = _STYLE_MIXING["fps"],
                       smoothing_sec: float = _STYLE_MIXING["smoothing_sec"], seed: int = _STYLE_MIXING["seed"], psi: float = DEFAULT_PSI, batch: int = _VIDEOS["batch"],
                       noise_mode: str = _STYLE_MIXING["noise_mode"], crf: float = _STYLE_MIXING["crf"], preset: str = _STYLE_MIXING["preset"],
                       tune: str | None = _STYLE_MIXING["tune"]) -> dict[str, Any]:
    """A source face walking through z (left) and fixed destination faces that take its
    `kind` styles (networks.style_groups: which w indices drive coarse, middle or fine
    resolutions of this model) and keep their own styles for the other layers."""
    groups = networks.style_groups(G.resolution)
    if kind not in groups:
        raise SetupError(f"style mixing kind must be one of {', '.join(groups)}, got {kind!r}")
    dest = DEFAULT_DESTINATIONS[kind] if destinations is None else int(destinations)
    if dest < 1 or batch < 1:
        raise SetupError(f"style mixing needs at least 1 destination and batch >= 1, got {dest}, {batch}")
    count = _frame_count(duration, fps)
    walk = LatentWalk(count, (1, G.z_dim), smoothing_sec * fps, seed)
    z_dest = np.random.default_rng([seed, 1]).standard_normal((dest, G.z_dim)).astype(np.float32)
    ws_dest = G.mapping(tf.constant(z_dest), psi=psi)
    start, stop = groups[kind]
    taken = np.zeros([1, 1, G.num_ws, 1], bool)
    taken[:, :, start:stop] = True

    @tf.function
    def synthesise(z: tf.Tensor) -> tf.Tensor:
        ws = G.mapping(z, psi=psi)[:, None]                      # [B, 1, num_ws, w_dim]
        mixed = tf.where(taken, ws, ws_dest[None])                          # [B, dest, num_ws, w_dim]
        ws = tf.reshape(tf.concat([ws, mixed], axis=1), [-1, G.num_ws, G.w_dim])
        return G.synthesis(ws, noise_mode=noise_mode)

    def render(t: np.ndarray) -> np.ndarray:
        return tile_frames(networks.to_uint8(synthesise(tf.constant(walk(t)[:, 0]))), dest + 1, dest + 1)

    encode_batches(render, max(1, batch // (dest + 1)), count, fps, out_mp4, crf=crf, preset=preset, tune=tune)
    return {"frames": count, "size": [(dest + 1) * G.resolution, G.resolution], "layers": [start, stop]}
