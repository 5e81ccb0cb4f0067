"""Pixels out to files: grids, PNGs and H.264 videos, shared by every stage that draws.

PNG is lossless and written without timestamps, so identical pixels give identical
bytes and an identical rerun changes nothing downstream. Videos stream frames through
moviepy into the x264 that imageio-ffmpeg ships, a batch of frames at a time, so memory
does not grow with the duration; yuv420p keeps them playable in every browser.
"""

from __future__ import annotations

import math
import os
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

import numpy as np
from moviepy import VideoClip
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from .runlog import SetupError, progress
from .tables import atomic_path

PIX_FMT = "yuv420p"  # the only H.264 chroma layout every browser decodes
X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow")
X264_TUNES = (None, "film", "animation", "grain", "stillimage", "fastdecode", "zerolatency")


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


def save_png(pixels: np.ndarray | Image.Image, path: str | os.PathLike, pnginfo: PngInfo | None = None) -> Path:
    """Write uint8 HWC RGB (or an image) as PNG atomically: identical pixels give identical
    bytes, and a kill leaves no half-written file."""
    path = Path(path)
    with atomic_path(path) as tmp:
        (pixels if isinstance(pixels, Image.Image) else Image.fromarray(pixels)).save(tmp, format="PNG",
                                                                                      pnginfo=pnginfo)
    return path


def even(x: float) -> int:
    """yuv420p stores chroma per 2x2 block, so x264 refuses odd frame sides."""
    return max(2, 2 * int(round(x / 2)))


def encode_video(frame_at: Callable[[int], np.ndarray], count: int, fps: float, out_mp4: str | os.PathLike, *,
            crf: float, preset: str, tune: str | None) -> None:
    """Stream frames 0..count-1 through moviepy into x264, written under a temp name."""
    if not 0 <= crf <= 51 or preset not in X264_PRESETS or tune not in X264_TUNES:
        raise SetupError(f"x264 takes crf 0-51, preset one of {', '.join(X264_PRESETS)} and tune one of "
                         f"{', '.join(map(str, X264_TUNES))}; got crf {crf}, preset {preset!r}, tune {tune!r}")
    bar = progress(total=count, unit="frame", desc=Path(out_mp4).name, dynamic_ncols=True)

    def frame_function(t: float) -> np.ndarray:
        # moviepy asks for time i / fps; rounding undoes its float error.
        i = min(count - 1, int(round(t * fps)))
        frame = frame_at(i)
        bar.update(max(0, i + 1 - bar.n))
        return frame

    # moviepy writes int(duration * fps) frames; the half frame keeps float error from losing one.
    clip = VideoClip(frame_function, duration=(count + 0.5) / fps)
    params = ["-crf", str(crf), "-pix_fmt", PIX_FMT] + (["-tune", tune] if tune else [])
    with bar, atomic_path(out_mp4) as tmp:
        clip.write_videofile(str(tmp), fps=fps, codec="libx264", preset=preset, audio=False,
                             ffmpeg_params=params, logger=None)
        if tmp.stat().st_size == 0:  # moviepy does not check ffmpeg's exit status
            raise RuntimeError(f"ffmpeg wrote nothing for {out_mp4}; see its messages above")


def tile_frames(images: np.ndarray, cells: int, cols: int) -> np.ndarray:
    """[frames * cells, h, w, 3] -> one row-major grid per frame."""
    return np.stack([tile(frame, cols) for frame in images.reshape(-1, cells, *images.shape[1:])])


def encode_batches(render: Callable[[np.ndarray], np.ndarray], per_call: int, count: int, fps: float,
                    out_mp4: str | os.PathLike, **encoding: Any) -> None:
    """Render `per_call` frames at a time (the last call padded to the same shape, so a
    traced generator is never retraced) and encode them as they come."""
    @lru_cache(maxsize=1)
    def batch(b: int) -> np.ndarray:
        return render(np.minimum(np.arange(b * per_call, (b + 1) * per_call), count - 1))

    encode_video(lambda i: batch(i // per_call)[i % per_call], count, fps, out_mp4, **encoding)


def even_frame(frame: np.ndarray) -> np.ndarray:
    """Pad to even sides with white (x264's yuv420p takes no odd side)."""
    h, w = frame.shape[:2]
    return np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)), constant_values=255)
