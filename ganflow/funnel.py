"""The funnel: how many images survive each data stage, and why the others did not.

Read from the stage manifests only (never the images), it is the first thing to look
at when a dataset comes out smaller than expected.
"""

from __future__ import annotations

import json
import math
import logging
from collections import Counter
from pathlib import Path
from typing import Sequence

from .contact import contact_sheet
from .names import FILE_PROBLEMS
from .tables import read_tsv, write_tsv

log = logging.getLogger(__name__)

# count is in the stage's own unit: images up to with_face, faces from crops on; images and
# faces give both (a picture may hold several faces), and dropped is in the stage's unit.
FUNNEL_COLUMNS = ["stage", "count", "images", "faces", "dropped_reason", "dropped"]
FACE_STAGES = ("crops", "clean", "unique", "final")


def _rows(paths: Sequence[Path]) -> list[dict]:
    return [row for p in paths for row in read_tsv(p)]


def funnel(summary_json: Path, faces: Sequence[Path], clean: Sequence[Path], dedupe_tsv: Path,
           images: Sequence[Path], image_rejects: Sequence[Path]) -> list[dict]:
    """Stage counts (posts -> selected -> found -> with face -> crops -> clean -> unique -> final)
    with the drop reasons of each step. The faces manifest's reasons are per image (no_face,
    not_solo, undecodable...), except over_max_faces, a face beyond faces.max_faces: it is a
    loss of the crops step."""
    summary = json.loads(Path(summary_json).read_text())
    face_rows, clean_rows = _rows(faces), _rows(clean)
    dedupe_rows, image_rows = read_tsv(dedupe_tsv), _rows(images)

    def step(stage: str, count: int, drops: Counter, faces: list[dict] | None = None) -> list[dict]:
        """A stage's row (`faces`: the rows of the faces that reach it, by source id) and its drops."""
        images = len({r["id"] for r in faces}) if faces is not None and stage in FACE_STAGES else count
        out = [{"stage": stage, "count": count, "images": images, "faces": "" if faces is None else len(faces),
                "dropped_reason": "", "dropped": ""}]
        out += [{"stage": stage, "count": "", "dropped_reason": r, "dropped": n} for r, n in sorted(drops.items())]
        return out

    def prefixed(prefix: str) -> Counter:
        return Counter({k[len(prefix):]: v for k, v in summary.items() if k.startswith(prefix)})

    rejected = prefixed("rejected:")
    # selected posts whose file is not there to read (the "found" step's losses)
    missing = Counter({reason: rejected.pop(reason) for reason in FILE_PROBLEMS if reason in rejected})
    with_face = {r["id"] for r in face_rows if r["status"] == "face"}
    image_drops = Counter(r["status"] for r in face_rows if r["status"] not in ("face", "over_max_faces"))
    crops = [r for r in face_rows if r["status"] == "face"]
    face_drops = Counter(r["status"] for r in face_rows if r["status"] == "over_max_faces")
    clean_drops = Counter(r["verdict"] for r in clean_rows if r["verdict"] != "kept")
    kept = [r for r in clean_rows if r["verdict"] == "kept"]
    dup_drops = Counter(f"{r['kind']}_duplicate" for r in dedupe_rows if r["keep"] != "1")
    unique = [r for r in dedupe_rows if r["keep"] == "1"]
    final_drops = Counter(r["reason"] for r in _rows(image_rejects))

    table = []
    table += step("posts", summary.get("posts", 0), Counter())
    table += step("selected", summary.get("selected", 0), prefixed("filtered:") + rejected)
    table += step("found", summary.get("found", 0), missing)
    detected = [r for r in face_rows if r["status"] in ("face", "over_max_faces")]
    source_of = {r["crop"]: r["id"] for r in crops}
    by_crop = lambda rows, key: [{"id": source_of.get(r[key], r[key])} for r in rows]
    table += step("with_face", len(with_face), image_drops, detected)
    table += step("crops", len(crops), face_drops, crops)
    table += step("clean", len(kept), clean_drops, by_crop(kept, "crop"))
    table += step("unique", len(unique), dup_drops, by_crop(unique, "crop"))
    table += step("final", len(image_rows), final_drops, by_crop(image_rows, "image"))
    return table


def make_funnel(summary_json: Path, faces: Sequence[Path], clean: Sequence[Path], dedupe_tsv: Path,
                images: Sequence[Path], image_rejects: Sequence[Path], out_tsv: Path, sheets: dict[str, Path],
                *, thumb: int = 64, max_items: int = 64) -> list[dict]:
    """Write the funnel table and one contact sheet per stage (no-face sources, faces, faces
    beyond faces.max_faces, rejected, duplicates, images)."""
    table = funnel(summary_json, faces, clean, dedupe_tsv, images, image_rejects)
    write_tsv(out_tsv, table, FUNNEL_COLUMNS)
    for row in table:
        if row["count"] != "":
            log.info("funnel %-10s %s", row["stage"], row["count"])
    clean_rows = _rows(clean)
    by_crop = {r["crop"]: r for r in clean_rows}
    face_rows = _rows(faces)
    picks = {
        # the sources where the detector found nothing: the sheet to tune faces: settings on
        "no-face": [(r["source"], r["id"]) for r in face_rows if r["status"] == "no_face"],
        "faces": [(r["path"], r["crop"]) for r in face_rows if r["status"] == "face"],
        # what faces.max_faces cost: the faces stage crops them too, for this sheet only
        "over-max-faces": [(r["path"], r["crop"]) for r in face_rows if r["status"] == "over_max_faces"],
        "rejected": [(r["path"], r["verdict"]) for r in clean_rows if r["verdict"] != "kept"],
        # each dropped copy right after the copy it duplicated (pairs share a row)
        "duplicates": [pair for r in read_tsv(dedupe_tsv) if r["keep"] != "1" and r["crop"] in by_crop
                       and r["cluster"] in by_crop
                       for pair in ((by_crop[r["cluster"]]["path"], f"kept {r['cluster']}"),
                                    (by_crop[r["crop"]]["path"], f"{r['kind']} {r['crop']}"))],
        "images": [(r["path"], r["image"]) for r in _rows(images)],
    }
    for stage, out_png in sheets.items():
        items = picks[stage]
        if stage == "duplicates":
            pairs = len(items) // 2
            contact_sheet(items, out_png, thumb=thumb, max_items=max_items - max_items % 2,
                          cols=2 * max(1, math.ceil(math.sqrt(min(pairs, max_items // 2) / 2))),
                          marked=range(1, len(items), 2), title=f"duplicates: {pairs} (kept, then the dropped copy)")
        else:
            contact_sheet(items, out_png, thumb=thumb, max_items=max_items, title=f"{stage}: {len(items)}")
    return table
