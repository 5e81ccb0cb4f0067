"""Text on figures and video frames, so that an image says what it shows.

Labels are sized from the figure's cells after they are enlarged to a readable size, never
from the model's resolution: a 32 px model's figure gets the same legible labels as a
1024 px one. Enlarging is by a whole factor with nearest-neighbour sampling, so every
generated pixel stays exact (cell (r, c) of a labelled grid, sampled every `scale` pixels,
is the original cell).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

MIN_CELL = 80  # px: cells smaller than this are enlarged (nearest neighbour) to at least this
INK, PAPER = (20, 20, 20), (255, 255, 255)


@lru_cache(maxsize=None)
def font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """Pillow's bundled font (no system fonts needed) at `size` px."""
    return ImageFont.load_default(size=size)


def fitting(text: str, size: int, width: float) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """The font at `size`, or smaller (down to 8 px) so that `text` fits `width` with a
    little room: a long column label ("reconstruction" over a small cell) is not cut at
    the figure's edge or run into its neighbour."""
    while size > 8 and font(size).getlength(text) > width * 0.95:
        size -= 1
    return font(size)


@dataclass(frozen=True)
class Layout:
    """Where the cells of a labelled grid lie: cell (r, c) starts at
    (top + r * cell_h * scale, left + c * cell_w * scale)."""

    scale: int
    top: int
    left: int
    font_size: int


def layout(cell_h: int, cell_w: int, *, columns: bool, rows: bool, min_cell: int = MIN_CELL,
           row_labels: Sequence[str] = ()) -> Layout:
    """The enlargement and label margins for cells of cell_h x cell_w px."""
    scale = max(1, math.ceil(min_cell / min(cell_h, cell_w)))
    size = max(12, min(cell_h, cell_w) * scale // 6)
    top = round(size * 1.8) if columns else 0
    widest = max((font(size).getlength(t) for t in row_labels), default=0.0)
    left = math.ceil(widest + size) if rows else 0
    return Layout(scale, top, left, size)


def labelled_grid(canvas: np.ndarray, cell_h: int, cell_w: int, *, col_labels: Sequence[str] = (),
                  row_labels: Sequence[str] = (), min_cell: int = MIN_CELL) -> np.ndarray:
    """`canvas` (a grid of cell_h x cell_w cells) enlarged to readable cells, with a label
    above each column and left of each row (empty sequences: no margin)."""
    lay = layout(cell_h, cell_w, columns=bool(col_labels), rows=bool(row_labels), min_cell=min_cell,
                 row_labels=row_labels)
    big = canvas.repeat(lay.scale, 0).repeat(lay.scale, 1)
    out = Image.new("RGB", (lay.left + big.shape[1], lay.top + big.shape[0]), PAPER)
    out.paste(Image.fromarray(big), (lay.left, lay.top))
    draw, face = ImageDraw.Draw(out), font(lay.font_size)
    ch, cw = cell_h * lay.scale, cell_w * lay.scale
    for c, text in enumerate(col_labels):
        draw.text((lay.left + c * cw + cw / 2, lay.top / 2), text, fill=INK, font=fitting(text, lay.font_size, cw),
                  anchor="mm")
    for r, text in enumerate(row_labels):
        draw.text((lay.left - lay.font_size / 2, lay.top + r * ch + ch / 2), text, fill=INK, font=face,
                  anchor="rm")
    return np.asarray(out)


def caption(frame: np.ndarray, text: str) -> np.ndarray:
    """`text` in the frame's top-left corner on a dark band, sized from the frame (videos)."""
    img = Image.fromarray(frame)
    size = max(10, min(img.size) // 14)
    face, pad = font(size), max(2, size // 4)
    draw = ImageDraw.Draw(img)
    x0, y0, x1, y1 = draw.textbbox((pad, pad), text, font=face)
    draw.rectangle((0, 0, x1 + pad, y1 + pad), fill=(0, 0, 0))
    draw.text((pad, pad), text, fill=(255, 255, 255), font=face)
    return np.asarray(img)
