"""Clean verdicts: which crops are fit to train on, and why the others are not.

Grayscale pages, flat single-colour images and tiny crops teach a GAN nothing but
noise, so they are rejected here with a reason per crop. Kept crops also get the two
hashes the global dedupe stage needs, so it never re-reads pixels.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import imagehash
import numpy as np
from PIL import Image

from .imaging import ImageRejected, load_srgb, to_array
from .runlog import progress
from .tables import read_tsv, write_tsv

CLEAN_COLUMNS = ["crop", "id", "source", "path", "box", "width", "height",
                 "verdict", "detail", "sha256", "phash"]


@dataclass(frozen=True)
class CleanParams:
    """Thresholds (see config clean:); pixel values are on the 0-255 scale."""

    min_side: int = 64
    gray_chroma: float = 4.0   # mean per-pixel (max channel - min channel) below this: grayscale
    mono_std: float = 6.0      # mean per-channel standard deviation below this: near-monochrome


def verdict(rgb: np.ndarray, p: CleanParams) -> tuple[str, str]:
    """('kept', '') or (reason, detail) for one decoded RGB crop."""
    h, w = rgb.shape[:2]
    if min(h, w) < p.min_side:
        return "too_small", f"{w}x{h} < {p.min_side}"
    pixels = rgb.reshape(-1, 3).astype(np.int16)
    std = float(pixels.std(axis=0).mean())
    if std < p.mono_std:
        return "monochrome", f"colour std {std:.2f} < {p.mono_std}"
    chroma = float((pixels.max(axis=1) - pixels.min(axis=1)).mean())
    if chroma < p.gray_chroma:
        return "grayscale", f"mean chroma {chroma:.2f} < {p.gray_chroma}"
    return "kept", ""


def pixel_sha256(image: Image.Image) -> str:
    """Hash of the decoded pixels and size: equal for byte-different files of one picture."""
    h = hashlib.sha256(f"{image.width}x{image.height}".encode())
    h.update(image.tobytes())
    return h.hexdigest()


def make_clean(faces_tsv: Path, out_tsv: Path, params: CleanParams) -> dict:
    """Judge every crop of one shard; crops the faces stage already rejected are not repeated."""
    rows = []
    counts: dict[str, int] = {}
    for item in progress(read_tsv(faces_tsv), desc=f"clean {Path(faces_tsv).stem}", unit="crop", leave=False):
        if item["status"] != "face":
            continue
        row = {k: item[k] for k in ("crop", "id", "source", "path", "box")}
        row.update(width="", height="", detail="", sha256="", phash="")
        try:
            image = load_srgb(item["path"])
        except ImageRejected as exc:
            row.update(verdict=exc.reason, detail=exc.detail)
        else:
            row.update(width=image.width, height=image.height)
            row["verdict"], row["detail"] = verdict(to_array(image), params)
            if row["verdict"] == "kept":
                row["sha256"] = pixel_sha256(image)
                row["phash"] = str(imagehash.phash(image))
        counts[row["verdict"]] = counts.get(row["verdict"], 0) + 1
        rows.append(row)
    write_tsv(out_tsv, rows, CLEAN_COLUMNS)
    return counts
