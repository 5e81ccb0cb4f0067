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

from .config import defaults
from .contact import SHEET_ITEMS, dropped_sheets, read_ranking
from .runlog import SetupError
from .tables import write_tsv

log = logging.getLogger(__name__)

# Defaults of the config sections this module serves (config/schema.yaml).
_DEFAULTS = defaults("rank")

KEEP_COLUMNS = ["image", "score"]


def share_count(share: float, n: int) -> int:
    """floor(share * n), computed on the decimal value written in the config (0.29 of
    100 is 29, not the 28 that binary floating point gives)."""
    return math.floor(Fraction(repr(float(share))) * n)


def make_keep(rank_tsv: str | os.PathLike, out_keep_tsv: str | os.PathLike, *, drop_lowest: float,
              drop_highest: float = _DEFAULTS["drop_highest"], sheets_dir: str | os.PathLike, thumb: int = 64,
              sheet_items: int = SHEET_ITEMS) -> dict:
    """Keep all but the lowest floor(drop_lowest * n) and the highest floor(drop_highest * n)
    of the n scored images; write keep.tsv (image, score in rank order) and the contact
    sheets lowest.png / highest.png (the `sheet_items` lowest and highest, whether dropped
    or not) so a person can see what the shares cut. Unscored rows are not kept."""
    if not (0 <= drop_lowest < 1 and 0 <= drop_highest < 1 and drop_lowest + drop_highest < 1):
        raise SetupError(f"rank shares drop_lowest={drop_lowest} and drop_highest={drop_highest} must each be "
                         "in [0, 1) and sum to less than 1; lower them")
    scored, unscored = read_ranking(rank_tsv)
    n = len(scored)
    low, high = share_count(drop_lowest, n), share_count(drop_highest, n)
    kept = scored[low:n - high]
    write_tsv(out_keep_tsv, ({"image": image, "score": row["score"]} for _, image, row in kept), KEEP_COLUMNS)
    dropped_sheets(scored, Path(sheets_dir) / "lowest.png", Path(sheets_dir) / "highest.png", low=low, high=high,
            thumb=thumb, sheet_items=sheet_items)
    summary = {"count": n, "kept": len(kept), "dropped_lowest": low, "dropped_highest": high,
               "unscored": len(unscored)}
    if unscored:
        log.warning("%d rows of %s have no score (%s) and are not kept", len(unscored), rank_tsv,
                    ", ".join(sorted({r.get("reason") or "no score" for r in unscored})))
    log.info("keep %d of %d ranked images: dropped the lowest %d and the highest %d", len(kept), n, low, high)
    return summary
