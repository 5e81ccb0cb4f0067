"""Decoding any image a user may have into upright 8-bit sRGB RGB, with a reason when it can't.

Every stage that reads pixels goes through `load_srgb`, so orientation (EXIF), colour
handling (CMYK, 16-bit, palettes, alpha, embedded ICC profiles) is decided once, and a
bad file becomes an `ImageRejected` with a short machine-readable reason instead of a crash.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import struct
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

Image.MAX_IMAGE_PIXELS = 20000 * 20000  # Danbooru has huge scans; refuse only absurd sizes

_SRGB = ImageCms.createProfile("sRGB")
_OBJECT_REPR = re.compile(r" ?<[^<>]* at 0x[0-9a-fA-F]+>")
# The IJG (libjpeg) base quantization tables, natural order: quality q scales them.
_IJG_TABLES = (
    np.array([16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55,
              14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62,
              18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
              49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99]),
    np.array([17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99,
              24, 26, 56, 99, 99, 99, 99, 99, 47, 66, 99, 99, 99, 99, 99, 99] + [99] * 32),
)
# Formats that store pixels exactly (GIF and palette PNG too: the palette is the picture).
LOSSLESS_FORMATS = frozenset({"png", "bmp", "gif", "tiff", "ppm", "tga", "qoi"})


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


@dataclass(frozen=True)
class Encoding:
    """How a file stores its pixels: which of two copies of a picture is the better one
    depends on this, not only on the pixel count."""

    format: str            # PIL's format name, lower case ("jpeg", "png", "webp", ...)
    lossless: bool
    quality: int | None    # estimated JPEG quality (1-100); None for other formats


def load_srgb(path: str | os.PathLike) -> Image.Image:
    """Decode `path` fully into an upright 8-bit RGB image in sRGB, or raise ImageRejected."""
    return load_with_encoding(path)[0]


def load_with_encoding(path: str | os.PathLike) -> tuple[Image.Image, Encoding]:
    """load_srgb, plus how the file was encoded (read from the same bytes)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ImageRejected("unreadable", f"{path}: {exc.strerror or exc}") from exc
    if not data:
        raise ImageRejected("empty", str(path))
    img = _decode(data, str(path))
    return to_srgb(upright(img)), encoding_of(img, data)


def decode_srgb(data: bytes, name: str = "<bytes>") -> Image.Image:
    """Decode encoded image bytes into upright 8-bit sRGB RGB (see load_srgb)."""
    return to_srgb(upright(_decode(data, name)))


def _decode(data: bytes, name: str) -> Image.Image:
    """The fully decoded file as PIL opened it (any mode, as stored), or ImageRejected."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            img.load()  # force a full decode: truncated files fail here, not later
    except Image.DecompressionBombError as exc:
        raise ImageRejected("too_large", f"{name}: {describe(exc)}") from exc
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombWarning) as exc:
        reason = "truncated" if "truncated" in str(exc).lower() else "undecodable"
        text = "not an image format PIL can read" if isinstance(exc, UnidentifiedImageError) else describe(exc)
        raise ImageRejected(reason, f"{name}: {text}") from exc
    return img


def describe(exc: BaseException) -> str:
    """An exception's message fit for a manifest cell: on one line, and without object reprs
    (`<_io.BytesIO object at 0x...>`), whose addresses would make identical runs differ."""
    return " ".join(_OBJECT_REPR.sub("", str(exc)).split())


def upright(img: Image.Image) -> Image.Image:
    """Apply the EXIF orientation: cameras and phones store photos sideways with a flag, and
    a face lying on its side is invisible to the detector."""
    try:
        ImageOps.exif_transpose(img, in_place=True)
    except Exception:  # Pillow's EXIF parser raises assorted errors on broken tags
        pass  # the pixels are fine; keep them as stored
    return img


def encoding_of(img: Image.Image, data: bytes) -> Encoding:
    """Format, losslessness and JPEG quality of an opened file (`data` its bytes)."""
    fmt = (img.format or "").lower()
    if fmt in ("jpeg", "mpo"):
        return Encoding(fmt, False, jpeg_quality(getattr(img, "quantization", None) or {}))
    if fmt == "webp":
        return Encoding(fmt, _webp_lossless(data), None)
    if fmt == "tiff" and "jpeg" in str(img.info.get("compression", "")):
        return Encoding(fmt, False, None)
    return Encoding(fmt, fmt in LOSSLESS_FORMATS, None)


def peek_encoding(data: bytes) -> Encoding | None:
    """encoding_of from the header alone (no pixel decode); None when PIL cannot identify it."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            return encoding_of(img, data)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        return None


def jpeg_quality(quantization: dict[int, list[int]]) -> int | None:
    """The IJG quality (1-100) whose standard tables are closest to a JPEG's own; exact for
    files written by libjpeg (PIL, most tools), an estimate for other encoders."""
    tables = [np.asarray(quantization[k], dtype=np.int64) for k in sorted(quantization)[:2]]
    if not tables or any(t.size != 64 for t in tables):
        return None

    def error(q: int) -> int:
        scale = 5000 // q if q < 50 else 200 - 2 * q
        return sum(int(np.abs(t - np.clip((base * scale + 50) // 100, 1, 255)).sum())
                   for t, base in zip(tables, _IJG_TABLES))

    return min(range(1, 101), key=lambda q: (error(q), -q))


def _webp_lossless(data: bytes) -> bool:
    """Whether a WebP file's image is VP8L (lossless) rather than VP8 (lossy): the first
    image chunk among RIFF's top-level chunks decides (animations count as lossy)."""
    pos = 12
    while pos + 8 <= len(data):
        fourcc, size = data[pos:pos + 4], struct.unpack("<I", data[pos + 4:pos + 8])[0]
        if fourcc in (b"VP8 ", b"VP8L", b"ANMF"):
            return fourcc == b"VP8L"
        pos += 8 + size + (size & 1)
    return False


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
    return img if img.mode == "RGB" else img.convert("RGB")  # no copy of a decode that is RGB already


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


def centre_square(img: Image.Image) -> Image.Image:
    """The centred square of side min(width, height): faces sit in the middle of crops."""
    side = min(img.size)
    left, top = (img.width - side) // 2, (img.height - side) // 2
    return img if img.size == (side, side) else img.crop((left, top, left + side, top + side))


def fit_square(img: Image.Image, size: int) -> Image.Image:
    """Centre-crop to a square and Lanczos-resize it to size x size (reducing by whole
    factors first on big sources, which is faster and visually identical)."""
    square = centre_square(img)
    if square.size == (size, size):
        return square
    return square.resize((size, size), Image.LANCZOS, reducing_gap=3.0)
