"""Decoding any image a user may have into 8-bit sRGB RGB, with a reason when it can't.

Every stage that reads pixels goes through `load_srgb`, so colour handling (CMYK,
16-bit, palettes, alpha, embedded ICC profiles) is decided once, and a bad file
becomes an `ImageRejected` with a short machine-readable reason instead of a crash.
"""

from __future__ import annotations

import hashlib
import io
import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageCms

Image.MAX_IMAGE_PIXELS = 20000 * 20000  # Danbooru has huge scans; refuse only absurd sizes

_SRGB = ImageCms.createProfile("sRGB")


class ImageRejected(Exception):
    """A file that cannot become a training image; `reason` is a short slug for manifests."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes, read in chunks so large files stay cheap on memory."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def load_srgb(path: str | os.PathLike) -> Image.Image:
    """Decode `path` fully into an 8-bit RGB image in sRGB, or raise ImageRejected."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ImageRejected("unreadable", f"{path}: {exc.strerror or exc}") from exc
    if not data:
        raise ImageRejected("empty", str(path))
    return decode_srgb(data, str(path))


def decode_srgb(data: bytes, name: str = "<bytes>") -> Image.Image:
    """Decode encoded image bytes into 8-bit sRGB RGB (see load_srgb)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            img.load()  # force a full decode: truncated files fail here, not later
    except Image.DecompressionBombError as exc:
        raise ImageRejected("too_large", f"{name}: {exc}") from exc
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombWarning) as exc:
        reason = "truncated" if "truncated" in str(exc).lower() else "undecodable"
        raise ImageRejected(reason, f"{name}: {exc}") from exc
    return to_srgb(img)


def to_srgb(img: Image.Image) -> Image.Image:
    """Convert any PIL mode (and any embedded ICC profile) to 8-bit sRGB RGB."""
    icc = img.info.get("icc_profile")
    img = _to_8bit(img)
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba)
    if icc:
        try:
            src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            mode = img.mode if img.mode in ("RGB", "CMYK", "L") else "RGB"
            img = ImageCms.profileToProfile(img.convert(mode), src, _SRGB, outputMode="RGB")
        except (ImageCms.PyCMSError, OSError, ValueError):
            pass  # a broken profile is common in the wild; the pixels are still usable
    return img.convert("RGB")


def _to_8bit(img: Image.Image) -> Image.Image:
    """Scale 16-bit and 32-bit integer/float modes down to 8 bits instead of clipping."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if img.mode.startswith("I;16") or arr.max() > 255 else 255.0
        return Image.fromarray(np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8))
    if img.mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        top = 1.0 if arr.max() <= 1.0 else 255.0
        return Image.fromarray(np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8))
    return img


def to_array(img: Image.Image) -> np.ndarray:
    """HWC uint8 array of an RGB image."""
    return np.asarray(img.convert("RGB"), dtype=np.uint8)
