"""Clean verdicts: which crops are fit to train on, and why the others are not.

Grayscale pages, flat single-colour images and tiny crops teach a GAN nothing but
noise, so they are rejected here with a reason per crop. Kept crops also get what the
global dedupe stage needs, so it never re-reads pixels: two hashes to find copies, and
whether the crop looks upscaled (with the source's format and quality, carried over from
the faces manifest) to pick the best copy; and, to find the faces of one illustration
resized, re-encoded or recropped, the source's size and hashes and the face's hash and
mean colour, also carried over.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import imagehash
import numpy as np
from PIL import Image

from .config import defaults
from .imaging import ImageRejected, load_srgb, to_array
from .runlog import progress
from .tables import read_tsv, write_tsv

log = logging.getLogger(__name__)

CLEAN_COLUMNS = ["crop", "id", "source", "path", "box", "width", "height",
                 "verdict", "detail", "sha256", "phash", "format", "lossless", "quality", "upscaled",
                 "source_size", "source_phash", "source_centre_phash", "face_phash", "face_rgb"]
# Carried over from the faces manifest as they are (the source ones are absent from old ones).
_CARRIED = ("crop", "id", "source", "path", "box", "format", "lossless", "quality", "source_size", "source_phash",
            "source_centre_phash", "face_phash", "face_rgb")
# Below this share of detail in the top octave a crop counts as enlarged (see top_octave_share).
UPSCALED_BELOW = 0.15
# The colour statistics of a larger crop come from this many of its pixels (see verdict_pixels).
VERDICT_PIXELS = 1 << 16
_DEFAULTS = defaults("clean")


@dataclass(frozen=True)
class CleanParams:
    """Thresholds (see config clean:); pixel values are on the 0-255 scale."""

    min_side: int = _DEFAULTS["min_side"]
    gray_chroma: float = _DEFAULTS["gray_chroma"]  # mean per-pixel (max channel - min channel) below this: grayscale
    mono_std: float = _DEFAULTS["mono_std"]        # mean per-channel standard deviation below this: near-monochrome


def verdict(rgb: np.ndarray, p: CleanParams) -> tuple[str, str]:
    """('kept', '') or (reason, detail) for one decoded RGB crop."""
    h, w = rgb.shape[:2]
    if min(h, w) < p.min_side:
        return "too_small", f"{w}x{h} < {p.min_side}"
    pixels = verdict_pixels(rgb).astype(np.int16)
    std = float(pixels.std(axis=0).mean())
    if std < p.mono_std:
        return "monochrome", f"colour std {std:.2f} < {p.mono_std}"
    chroma = float((pixels.max(axis=1) - pixels.min(axis=1)).mean())
    if chroma < p.gray_chroma:
        return "grayscale", f"mean chroma {chroma:.2f} < {p.gray_chroma}"
    return "kept", ""


def verdict_pixels(rgb: np.ndarray) -> np.ndarray:
    """The (N, 3) pixels verdict() measures: all of a small crop; of a larger one, VERDICT_PIXELS
    drawn uniformly with a fixed seed. The statistics are means over pixels, so a sample
    estimates them to ~1/256 of their spread (a 2 Mpx crop costs a second in full), and
    unlike a thumbnail it keeps fine colour noise and sparse specks at their true share;
    unlike a regular stride it cannot alias with a screentone's period."""
    pixels = rgb.reshape(-1, 3)
    if len(pixels) <= VERDICT_PIXELS:
        return pixels
    return pixels[np.random.default_rng(0).integers(0, len(pixels), VERDICT_PIXELS)]


def top_octave_share(image: Image.Image) -> float:
    """Share of a picture's fine detail (its energy above a 4x blur) that lies in the top
    octave (above a 2x blur). Art at its native size has ~0.25-0.5 there; enlarged 2x it has
    ~0.1 or less, since enlarging adds no detail finer than the source's pixels. 1.0 when
    there is no detail to judge."""
    gray = image.convert("L")
    w, h = gray.size
    if min(w, h) < 8:
        return 1.0
    pixels = np.asarray(gray, dtype=np.float64)

    def lost(factor: int) -> float:
        blurred = gray.resize((w // factor, h // factor), Image.BOX).resize((w, h), Image.BICUBIC)
        return float(((pixels - np.asarray(blurred, dtype=np.float64)) ** 2).sum())

    total = lost(4)
    return lost(2) / total if total else 1.0


def pixel_sha256(image: Image.Image) -> str:
    """Hash of the decoded pixels and size: equal for byte-different files of one picture."""
    h = hashlib.sha256(f"{image.width}x{image.height}".encode())
    h.update(image.tobytes())
    return h.hexdigest()


def make_clean(faces_tsv: Path, out_tsv: Path, params: CleanParams) -> dict:
    """Judge every crop of one shard; crops the faces stage already rejected are not repeated."""
    rows = []
    counts: dict[str, int] = {}
    started = time.perf_counter()
    for item in progress(read_tsv(faces_tsv), desc=f"clean {Path(faces_tsv).stem}", unit="crop", leave=False):
        if item["status"] != "face":
            continue
        row = {k: item.get(k, "") for k in _CARRIED}
        row.update(width="", height="", detail="", sha256="", phash="", upscaled="")
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
                row["upscaled"] = int(top_octave_share(image) < UPSCALED_BELOW)
        counts[row["verdict"]] = counts.get(row["verdict"], 0) + 1
        rows.append(row)
    write_tsv(out_tsv, rows, CLEAN_COLUMNS)
    seconds = time.perf_counter() - started
    rejected = Counter({k: n for k, n in counts.items() if k != "kept"})
    log.info("clean %s: %d crops judged in %.1f s (%.3f s/crop): %d kept (%d look upscaled); rejected: %s",
             Path(faces_tsv).stem, len(rows), seconds, seconds / max(len(rows), 1), counts.get("kept", 0),
             sum(r["upscaled"] == 1 for r in rows),
             ", ".join(f"{k} {n}" for k, n in sorted(rejected.items())) or "none")
    return counts
