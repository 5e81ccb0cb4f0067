"""Contact sheets: a labelled thumbnail grid, so a person can eyeball what a stage kept
or threw away (faces found, rejects, duplicates, the lowest- and highest-ranked images)."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Collection, Sequence

from PIL import Image, ImageDraw
from PIL.PngImagePlugin import PngInfo

from .config import defaults
from .imaging import ImageRejected, load_srgb
from .media import save_png
from .runlog import SetupError
from .tables import read_tsv


MARK = (255, 127, 14)  # the outline of marked thumbnails (e.g. what a ranking dropped)
# The PNG text chunk that holds each tile's box, full label and file (read by report.py
# for the overview's tooltips): a tile's drawn label is only as long as the tile is wide.
TILES_KEY = "ganflow-tiles"
SHEET_ITEMS = defaults("rank")["sheet_items"]  # thumbnails on each sheet of a ranking


def short_label(label: str, width: int) -> str:
    """The end of `label` that fits `width` chars (ids and file names differ at their
    ends), marked with "~" where it was cut."""
    return label if len(label) <= width else "~" + label[-(width - 1):]


def contact_sheet(items: Sequence[tuple[str, str]], out_png: Path, *, thumb: int = 64,
                  max_items: int = 64, title: str = "", cols: int | None = None,
                  marked: Collection[int] = ()) -> int:
    """Write a grid of (image path, label) thumbnails; unreadable files show as a grey tile
    with their label, so a sheet of rejects can show corrupt files too. Items whose index is
    in `marked` get an orange outline; a sheet that shows only the first `max_items` says so
    in its title ("64 of 128"). Each tile's box, full label and path go into the PNG's
    TILES_KEY text chunk. Returns the count shown."""
    total = len(items)
    items = list(items)[:max_items]
    if total > len(items):
        title = f"{title} ({len(items)} of {total} shown)" if title else f"{len(items)} of {total} shown"
    cols = cols or max(1, min(len(items), int(math.ceil(math.sqrt(max(len(items), 1))))))
    rows = max(1, math.ceil(len(items) / cols))
    label_h, head = 12, (16 if title else 0)
    sheet = Image.new("RGB", (cols * thumb, head + rows * (thumb + label_h)), (32, 32, 32))
    draw = ImageDraw.Draw(sheet)
    if title:
        draw.text((4, 2), title, fill=(255, 255, 255))
    if not items:
        draw.text((4, head + 2), "(none)", fill=(200, 200, 200))
    tiles = []
    for i, (path, label) in enumerate(items):
        x, y = (i % cols) * thumb, head + (i // cols) * (thumb + label_h)
        tiles.append({"box": [x, y, x + thumb, y + thumb + label_h], "label": label, "path": str(path)})
        try:
            tile = load_srgb(path)
            tile.thumbnail((thumb, thumb), Image.Resampling.LANCZOS)
            sheet.paste(tile, (x + (thumb - tile.width) // 2, y + (thumb - tile.height) // 2))
        except ImageRejected:
            draw.rectangle((x + 1, y + 1, x + thumb - 2, y + thumb - 2), fill=(90, 90, 90))
        if i in marked:
            draw.rectangle((x, y, x + thumb - 1, y + thumb - 1), outline=MARK, width=max(2, thumb // 24))
        draw.text((x + 2, y + thumb), short_label(label, max(4, thumb // 6)), fill=(230, 230, 230))
    info = PngInfo()
    info.add_itxt(TILES_KEY, json.dumps(tiles, ensure_ascii=False), zip=True)
    save_png(sheet, out_png, info)
    return len(items)


def read_ranking(rank_tsv: str | os.PathLike) -> tuple[list[tuple[float, str, dict]], list[dict]]:
    """(score, image, row) of the scored rows, lowest first, and the rows without a score."""
    rows = read_tsv(rank_tsv)
    if rows and "score" not in rows[0]:
        raise SetupError(f"{rank_tsv} has no column 'score'; it is not a rank table, rerun the rank rule")
    scored, unscored = [], []
    for row in rows:
        try:
            score = float(row["score"])
        except (TypeError, ValueError):
            score = math.nan
        if math.isfinite(score):
            scored.append((score, row["image"], row))
        else:
            unscored.append(row)
    scored.sort(key=lambda t: t[:2])
    return scored, unscored


def dropped_sheets(scored: list[tuple[float, str, dict]], lowest_png: Path, highest_png: Path, *, low: int, high: int,
            thumb: int, sheet_items: int) -> None:
    """The `sheet_items` lowest and highest, whether dropped or not, the dropped ones outlined."""
    n = len(scored)
    contact_sheet([(t[2]["path"], f"{t[0]:.3g}") for t in scored], lowest_png, thumb=thumb,
                  max_items=sheet_items, marked=range(low), title=f"lowest of {n}: {low} dropped (outlined)")
    contact_sheet([(t[2]["path"], f"{t[0]:.3g}") for t in scored[::-1]], highest_png, thumb=thumb,
                  max_items=sheet_items, marked=range(high), title=f"highest of {n}: {high} dropped (outlined)")


def ranking_sheets(rank_tsv: str | os.PathLike, lowest_png: Path, highest_png: Path, *, thumb: int = 64,
                   sheet_items: int = SHEET_ITEMS) -> None:
    """The lowest and highest of any ranking (nothing dropped), e.g. of a folder ranked by hand."""
    scored, _ = read_ranking(rank_tsv)
    dropped_sheets(scored, lowest_png, highest_png, low=0, high=0, thumb=thumb, sheet_items=sheet_items)
