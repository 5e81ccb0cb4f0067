"""A training run's log.csv: one row per tick, appended as training goes (fsynced, so a
kill loses at most the line being written), read back to resume and to draw the curves.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

from .tables import atomic_open

LOG_COLUMNS = ["kimg", "tick", "step", "seconds", "sec_per_tick", "sec_per_kimg", "images_per_sec", "data_wait_pct",
               "loss_g", "loss_d", "r1", "pl", "d_real", "d_fake", "augment_p", "swd", "fid", "kid", "precision", "recall", "frame"]


def read_log(path: str | os.PathLike, *, partial: bool = False) -> list[dict[str, str | None]]:
    """Rows of a per-tick log; a line cut short by a kill is dropped (a resume makes it
    again), or with `partial` kept with its missing cells None (the report draws what there
    is). A log written before a column existed keeps its rows, the new column left empty."""
    path = Path(path)
    if not path.is_file():
        return []
    with open(path, encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        rows = list(reader)
        header = reader.fieldnames or []
    if partial:
        return [{c: row.get(c) for c in LOG_COLUMNS} for row in rows]
    good = []
    for row in rows:
        try:
            float(row["kimg"])
        except (TypeError, ValueError, KeyError):
            continue
        if None not in row.values() and len(row) == len(header) and set(header) <= set(LOG_COLUMNS):
            good.append({c: row.get(c, "") for c in LOG_COLUMNS})
    return good


def write_log(path: str | os.PathLike, rows: list[dict]) -> None:
    with atomic_open(path) as fh:
        writer = csv.DictWriter(fh, LOG_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def append_log(path: str | os.PathLike, row: dict) -> None:
    with open(path, "a", encoding="utf-8", newline="") as fh:
        csv.DictWriter(fh, LOG_COLUMNS, lineterminator="\n").writerow(row)
        fh.flush()
        os.fsync(fh.fileno())
