"""The next round's training list: all of a ranking but its lowest and highest shares.

The lowest discriminator scores are mostly bad crops, text, collages and the like, so
dropping a small share and retraining cleans the data; the contact sheets of both ends show
a person what the shares cut before the next round trains on it.
"""

from __future__ import annotations

import logging
import math
import os
from fractions import Fraction
from pathlib import Path

from .contact import contact_sheet
from .runlog import SetupError
from .tables import read_tsv, write_tsv

log = logging.getLogger(__name__)

KEEP_COLUMNS = ["image", "score"]
SHEET_ITEMS = 64


def share_count(share: float, n: int) -> int:
    """floor(share * n), computed on the decimal value written in the config (0.29 of
    100 is 29, not the 28 that binary floating point gives)."""
    return math.floor(Fraction(repr(float(share))) * n)


def _read_ranking(rank_tsv: str | os.PathLike) -> tuple[list[tuple[float, str, dict]], list[dict]]:
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


def _sheets(scored: list[tuple[float, str, dict]], lowest_png: Path, highest_png: Path, *, low: int, high: int,
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
    scored, _ = _read_ranking(rank_tsv)
    _sheets(scored, lowest_png, highest_png, low=0, high=0, thumb=thumb, sheet_items=sheet_items)


def make_keep(rank_tsv: str | os.PathLike, out_keep_tsv: str | os.PathLike, *, drop_lowest: float,
              drop_highest: float = 0.0, sheets_dir: str | os.PathLike, thumb: int = 64,
              sheet_items: int = SHEET_ITEMS) -> dict:
    """Keep all but the lowest floor(drop_lowest * n) and the highest floor(drop_highest * n)
    of the n scored images; write keep.tsv (image, score in rank order) and the contact
    sheets lowest.png / highest.png (the `sheet_items` lowest and highest, whether dropped
    or not) so a person can see what the shares cut. Unscored rows are not kept."""
    if not (0 <= drop_lowest < 1 and 0 <= drop_highest < 1 and drop_lowest + drop_highest < 1):
        raise SetupError(f"rank shares drop_lowest={drop_lowest} and drop_highest={drop_highest} must each be "
                         "in [0, 1) and sum to less than 1; lower them")
    scored, unscored = _read_ranking(rank_tsv)
    n = len(scored)
    low, high = share_count(drop_lowest, n), share_count(drop_highest, n)
    kept = scored[low:n - high]
    write_tsv(out_keep_tsv, ({"image": image, "score": row["score"]} for _, image, row in kept), KEEP_COLUMNS)
    _sheets(scored, Path(sheets_dir) / "lowest.png", Path(sheets_dir) / "highest.png", low=low, high=high,
            thumb=thumb, sheet_items=sheet_items)
    summary = {"count": n, "kept": len(kept), "dropped_lowest": low, "dropped_highest": high,
               "unscored": len(unscored)}
    if unscored:
        log.warning("%d rows of %s have no score (%s) and are not kept", len(unscored), rank_tsv,
                    ", ".join(sorted({r.get("reason") or "no score" for r in unscored})))
    log.info("keep %d of %d ranked images: dropped the lowest %d and the highest %d", len(kept), n, low, high)
    return summary
