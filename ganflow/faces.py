"""Face crops: lbpcascade_animeface over every selected image of a shard.

The cascade is loaded once per job (per shard), never per image: starting one
process per image, as the usual xargs recipe does, spends most of its time loading
OpenCV and the cascade. Crops are cut from the image after EXIF
orientation and colour conversion to sRGB, so every later stage sees the same pixels.
Boxes are in that upright image's coordinates, also where a large original was searched
on a shrunk copy (detect_side), which is most of the stage's speed on big pictures; a crop
longer than max_crop_side is stored shrunk to it, since PNG-encoding huge crops was the
next cost and no later stage needs more pixels than the training resolution.

Every detected face gets a row: the best `max_faces` by detector score become crops
(status face); the rest are cropped too, so that a contact sheet can show what the limit
cost, but marked over_max_faces and never judged or trained on. With `solo`, an image
with more than one face gives one not_solo row and no crop. The size and perceptual
hashes of each source travel with its rows, so that dedupe can tell copies of one
illustration at other scales or crops apart from different pictures.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import cv2
import imagehash
import numpy as np
from PIL import Image

from .config import defaults
from .names import ID_MAX_LENGTH, safe_id
from .runlog import SetupError, progress
from .imaging import Encoding, ImageRejected, load_with_encoding, peek_encoding, sha256_file
from .tables import download, read_tsv, remove_stale, write_if_changed, write_tsv

log = logging.getLogger(__name__)

# sha256 of each crop file makes the manifest carry its content: the clean stage reruns
# exactly when a crop's pixels change, even if its box and score did not. format, lossless
# and quality describe the source file, so dedupe can keep the best of several copies.
# box is the crop's box, face_box the detector's (both x,y,w,h); source_size (WxH) and the
# perceptual hashes of the whole upright source and of its centre (CENTRE_SHARE of each
# side) let dedupe find copies of one illustration, recropped ones too: a copy cut to the
# centre has a whole-image hash close to the original's centre hash. face_phash and face_rgb
# (mean colour) describe the face itself (its box grown by FACE_MARGIN), whatever the
# framing: dedupe tells the faces of two copies apart with them, and a portrait crop,
# clipped differently at the borders of each copy, would blur them.
FACE_COLUMNS = ["crop", "id", "source", "path", "box", "score", "sha256", "status", "detail",
                "format", "lossless", "quality", "face_box", "face_phash", "face_rgb", "source_size", "source_phash",
                "source_centre_phash"]
CENTRE_SHARE = 0.9
# Perceptual hashes of pictures this long or longer (per axis) are taken of a copy box-reduced
# by the whole factor that keeps it at least this long (see _phash).
PHASH_BOX_FROM = 1024
FACE_MARGIN = 0.1
FRAMINGS = ("face", "portrait")
# The portrait framing's margins, in face-box sizes: room above for hair and hats, below
# for the chin and neckline, and on each side; the face framing's are `margin` all round.
PORTRAIT_ABOVE, PORTRAIT_BELOW, PORTRAIT_SIDES = 0.8, 0.5, 0.65
_DEFAULTS = defaults("faces")  # config/schema.yaml's faces: section
CASCADE_SHA256 = _DEFAULTS["cascade_sha256"]  # the pinned cascade's
CASCADE_URL = ("https://raw.githubusercontent.com/nagadomi/lbpcascade_animeface/"
               "master/lbpcascade_animeface.xml")


def fetch_cascade(dest: Path, url: str = CASCADE_URL, sha256: str = CASCADE_SHA256) -> Path:
    """Download the cascade once and refuse it unless its sha256 matches the pinned one."""
    return download(url, dest, lambda tmp: _check_sha256(tmp, sha256, url), "the face cascade",
                    "download it by hand or set faces.cascade to a local copy")


def load_cascade(path: Path, sha256: str | None = CASCADE_SHA256) -> cv2.CascadeClassifier:
    """Load the cascade, checking the file is the expected one so detection is reproducible."""
    path = Path(path)
    if not path.is_file():
        raise SetupError(f"face cascade {path} does not exist; set faces.cascade to a copy of "
                         "lbpcascade_animeface.xml, or delete the key to download it to resources/")
    if sha256:
        _check_sha256(path, sha256, str(path))
    try:
        cascade = cv2.CascadeClassifier(str(path))
    except (cv2.error, SystemError):  # OpenCV raises on a malformed XML instead of returning empty
        cascade = None
    if cascade is None or cascade.empty():
        raise SetupError(f"OpenCV could not load the face cascade {path}; is it an OpenCV cascade XML "
                         "and is opencv-python 4.x installed (OpenCV 5 has no CascadeClassifier)?")
    return cascade


def _check_sha256(path: Path, expected: str, name: str) -> None:
    actual = sha256_file(path)
    if actual != expected:
        raise SetupError(f"face cascade {name} has sha256 {actual}, expected {expected}; "
                         "replace the file, or set faces.cascade_sha256 if you use another cascade on purpose")


@dataclass(frozen=True)
class FaceParams:
    """Detector and crop settings (see config faces:)."""

    enabled: bool = _DEFAULTS["enabled"]
    scale_factor: float = _DEFAULTS["scale_factor"]
    min_neighbors: int = _DEFAULTS["min_neighbors"]
    min_size: int = _DEFAULTS["min_size"]
    margin: float = _DEFAULTS["margin"]
    square: bool = _DEFAULTS["square"]
    max_faces: int = _DEFAULTS["max_faces"]
    framing: str = _DEFAULTS["framing"]
    solo: bool = _DEFAULTS["solo"]
    detect_side: int | None = _DEFAULTS["detect_side"]
    max_crop_side: int | None = _DEFAULTS["max_crop_side"]

    def __post_init__(self) -> None:
        if self.framing not in FRAMINGS:
            raise ValueError(f"faces.framing must be one of {', '.join(FRAMINGS)}, not {self.framing!r}")
        if self.detect_side is not None and self.detect_side < 1:
            raise ValueError(f"faces.detect_side must be a positive number of pixels or null, not {self.detect_side!r}")
        if self.max_crop_side is not None and self.max_crop_side < 1:
            raise ValueError(f"faces.max_crop_side must be a positive number of pixels or null, not {self.max_crop_side!r}")


def detect(cascade: cv2.CascadeClassifier, rgb: np.ndarray, p: FaceParams) -> list[tuple[int, int, int, int, float]]:
    """Every box (x, y, w, h, score) on the histogram-equalised grey image, best first: the
    caller decides what max_faces and solo make of them, so none is lost uncounted.

    A picture whose longest side exceeds detect_side is searched on a copy shrunk to it
    (area-averaged, min_size scaled alike) and the boxes are scaled back: the cascade's
    cost grows with the pixels it scans, and a 4000 px original takes seconds at full
    size. The copy cannot show a face smaller than the cascade's window (24 px), so the
    smallest face found in such a picture grows with it (min_face: 94 px in a 4000 px
    picture at detect_side 1024)."""
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    height, width = gray.shape
    scale = detect_scale(width, height, p)
    gray = cv2.equalizeHist(fit_side(gray, p.detect_side))
    min_side = max(round(p.min_size * scale), 1)
    boxes, _levels, weights = cascade.detectMultiScale3(
        gray, scaleFactor=p.scale_factor, minNeighbors=p.min_neighbors,
        minSize=(min_side, min_side), outputRejectLevels=True)
    fx, fy = width / gray.shape[1], height / gray.shape[0]
    found = []
    for (x, y, w, h), s in zip(np.asarray(boxes).reshape(-1, 4), np.asarray(weights).reshape(-1)):
        x0, y0 = min(round(x * fx), width - 1), min(round(y * fy), height - 1)
        found.append((x0, y0, min(round(w * fx), width - x0), min(round(h * fy), height - y0), float(s)))
    return sorted(found, key=lambda b: -b[4])


def detect_scale(width: int, height: int, p: FaceParams) -> float:
    """The factor detect() shrinks a width x height picture by before searching it (1: none)."""
    longest = max(width, height)
    return 1.0 if p.detect_side is None or longest <= p.detect_side else p.detect_side / longest


def min_face(cascade: cv2.CascadeClassifier, width: int, height: int, p: FaceParams) -> int:
    """The side of the smallest face detect() can find in a width x height picture, in its pixels."""
    window = max(cascade.getOriginalWindowSize())
    return max(p.min_size, int(np.ceil(window / detect_scale(width, height, p))))


def crop_box(box: tuple[int, int, int, int], margin: float, square: bool, width: int, height: int,
             framing: str = _DEFAULTS["framing"]) -> tuple[int, int, int, int]:
    """Grow a detection by its framing's margins (face: `margin` of its size on each side;
    portrait: PORTRAIT_*), optionally to a square about the grown box's centre, shifted (not
    shrunk) to stay inside the image where it fits, else clipped to the image."""
    x, y, w, h = box
    above, below, sides = (margin, margin, margin) if framing == "face" else (
        PORTRAIT_ABOVE, PORTRAIT_BELOW, PORTRAIT_SIDES)
    # (m + m) and the zero shift keep the face framing's arithmetic bit for bit what it was
    cx, cy = x + w / 2, y + h / 2 + h * (below - above) / 2
    bw, bh = w * (1 + (sides + sides)), h * (1 + (above + below))
    if square:
        bw = bh = max(bw, bh)
    bw, bh = min(bw, width), min(bh, height)
    if square:
        bw = bh = min(bw, bh)
    x0 = int(round(min(max(cx - bw / 2, 0), width - bw)))
    y0 = int(round(min(max(cy - bh / 2, 0), height - bh)))
    return x0, y0, int(round(bw)), int(round(bh))


def make_faces(ids_tsv: Path, out_dir: Path, out_tsv: Path, params: FaceParams,
               cascade_path: Path | None = None, cascade_sha256: str | None = CASCADE_SHA256) -> dict:
    """Detect and crop faces for one shard; every selected image yields rows (crops or a reason)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    cascade = load_cascade(cascade_path, cascade_sha256) if params.enabled else None
    rows: list[dict] = []
    counts = {"images": 0, "with_face": 0, "crops": 0}
    found = 0
    written: set[str] = set()
    started = time.perf_counter()
    for item in progress(read_tsv(ids_tsv), desc=f"faces {Path(ids_tsv).stem}", unit="img", leave=False):
        counts["images"] += 1
        base = {"id": item["id"], "source": item["path"]}
        if not safe_id(item["id"]):  # the id names files below: never a path of its own
            rows.append({**base, "status": "bad_id", "detail": "an id may hold only A-Z a-z 0-9 . _ -, not start "
                         f"with a dot or dash, nor hold '..', and have at most {ID_MAX_LENGTH} characters; "
                         "rebuild ids/ with the ids stage"})
            continue
        if not params.enabled:  # already-cropped data: the whole image is the crop
            rows.append(_whole_image_row(base, item))
            counts["crops"] += 1
            continue
        try:
            image, encoding = load_with_encoding(item["path"])
        except ImageRejected as exc:
            rows.append({**base, "status": exc.reason, "detail": exc.detail})
            continue
        grey = image.convert("L")  # what imagehash.phash converts to, once for all of this picture's hashes
        base.update(_encoding_cells(encoding), source_size=f"{image.width}x{image.height}",
                    source_phash=_phash(grey), source_centre_phash=_phash(_centre(grey)))
        rgb = np.asarray(image)  # load_srgb's image is RGB: no conversion copy
        faces = detect(cascade, rgb, params)
        found += len(faces)
        if not faces:
            rows.append({**base, "status": "no_face", "detail": f"{image.width}x{image.height}, searched for faces "
                         f"of {min_face(cascade, image.width, image.height, params)} px and up"})
            continue
        if params.solo and len(faces) > 1:
            rows.append({**base, "status": "not_solo",
                         "detail": f"{len(faces)} faces found; faces.solo keeps images with one"})
            continue
        counts["with_face"] += 1
        for k, (x, y, w, h, score) in enumerate(faces):
            bx, by, bw, bh = crop_box((x, y, w, h), params.margin, params.square, image.width, image.height,
                                      params.framing)
            crop_id = f"{item['id']}-{k}"
            path = out_dir / f"{crop_id}.png"
            digest = _write_png(fit_side(rgb[by:by + bh, bx:bx + bw], params.max_crop_side), path)
            written.add(path.name)
            kept = k < params.max_faces
            rows.append({**base, "crop": crop_id, "path": str(path), "box": f"{bx},{by},{bw},{bh}",
                         "score": round(score, 3), "sha256": digest, "face_box": f"{x},{y},{w},{h}",
                         **_face_cells(grey, rgb, (x, y, w, h)),
                         "status": "face" if kept else "over_max_faces",
                         "detail": "" if kept else f"face {k + 1} of {len(faces)} by score; faces.max_faces "
                                                   f"is {params.max_faces}"})
            counts["crops"] += kept
    remove_stale(out_dir, written, ["*.png"])
    write_tsv(out_tsv, rows, FACE_COLUMNS)
    _log_summary(Path(ids_tsv).stem, counts, found, rows, time.perf_counter() - started, params)
    return counts


def _log_summary(shard: str, counts: dict, found: int, rows: list[dict], seconds: float, params: FaceParams) -> None:
    """One line a person reads in the rule's log: what went in, what came out, why the rest
    did not, and the time per image (the number to size a cluster job with)."""
    per_image = seconds / max(counts["images"], 1)
    dropped = Counter(r["status"] for r in rows if r["status"] != "face")
    why = ", ".join(f"{reason} {n}" for reason, n in sorted(dropped.items())) or "none"
    if not params.enabled:
        log.info("faces %s: %d images passed through as crops (detection disabled), %.3f s/image; not kept: %s",
                 shard, counts["images"], per_image, why)
        return
    log.info("faces %s: %d images read in %.1f s (%.3f s/image), framing %s%s: %d faces found, %d images with "
             "a kept face, %d crops; not kept: %s", shard, counts["images"], seconds, per_image, params.framing,
             ", solo" if params.solo else "", found, counts["with_face"], counts["crops"], why)


def _face_cells(grey: Image.Image, rgb: np.ndarray, box: tuple[int, int, int, int]) -> dict:
    """face_phash and face_rgb of the detector's box grown by FACE_MARGIN (clipped to the
    picture): a little context steadies the hash against the box's jitter between copies.
    `grey` is the picture in mode L, `rgb` its pixels."""
    x, y, w, h = box
    gx, gy = round(w * FACE_MARGIN), round(h * FACE_MARGIN)
    left, top, right, bottom = max(x - gx, 0), max(y - gy, 0), min(x + w + gx, grey.width), min(y + h + gy, grey.height)
    mean = cv2.mean(rgb[top:bottom, left:right])[:3]  # ~5x numpy (which copies the box first)
    return {"face_phash": _phash(grey.crop((left, top, right, bottom))),
            "face_rgb": ",".join(str(round(float(v))) for v in mean)}


def _phash(grey: Image.Image) -> str:
    """imagehash.phash of a mode-L picture. One PHASH_BOX_FROM long or longer is box-reduced
    first by the whole factor that keeps it at least that long (what PIL's reducing_gap does):
    the hash's Lanczos shrink to 32 px costs ~6 operations per source pixel (40 ms for two
    hashes of a 7 Mpx picture), and a 32 px thumbnail of the reduced copy is all but the same.
    Pictures under twice PHASH_BOX_FROM on both sides are hashed exactly as before."""
    factors = (max(grey.width // PHASH_BOX_FROM, 1), max(grey.height // PHASH_BOX_FROM, 1))
    return str(imagehash.phash(grey if factors == (1, 1) else grey.reduce(factors)))


def fit_side(rgb: np.ndarray, side: int | None) -> np.ndarray:
    """A picture longer than `side` shrunk (area-averaged) to that longest side, else as it
    is: the copy detect() searches, and a crop before PNG-encoding, which is most of the
    stage's cost on big originals and grows with the crop's area."""
    height, width = rgb.shape[:2]
    if side is None or max(height, width) <= side:
        return rgb
    scale = side / max(height, width)
    return cv2.resize(rgb, (max(round(width * scale), 1), max(round(height * scale), 1)), interpolation=cv2.INTER_AREA)


def _centre(image: Image.Image) -> Image.Image:
    """The centred CENTRE_SHARE of the picture's width and height."""
    w, h = round(image.width * CENTRE_SHARE), round(image.height * CENTRE_SHARE)
    left, top = (image.width - w) // 2, (image.height - h) // 2
    return image.crop((left, top, left + w, top + h))


def _whole_image_row(base: dict, item: dict) -> dict:
    """The row of an image that is its own crop; the clean stage judges whether it decodes."""
    try:
        data: bytes | None = Path(item["path"]).read_bytes()
    except OSError:
        data = None
    return {**base, "crop": f"{item['id']}-0", "path": item["path"], "box": "", "score": "",
            "sha256": "" if data is None else hashlib.sha256(data).hexdigest(), "status": "face",
            "detail": "detection disabled", **_encoding_cells(peek_encoding(data) if data else None)}


def _encoding_cells(encoding: Encoding | None) -> dict:
    if encoding is None:
        return {"format": "", "lossless": "", "quality": ""}
    return {"format": encoding.format, "lossless": int(encoding.lossless),
            "quality": "" if encoding.quality is None else encoding.quality}


def _write_png(rgb: np.ndarray, path: Path) -> str:
    """Write a crop losslessly (unless identical bytes are already there); return its sha256.
    On big originals encoding was most of the stage. zlib's run-length strategy at level 1
    encodes flat-shaded art ~1.7x faster than the default at level 3, into files no larger,
    and one row filter ("up") instead of libpng's per-row trial of all five ~1.8x faster
    again, for files ~8% larger (benchmarks/bench_faces.py)."""
    ok, buf = cv2.imencode(".png", cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR),
                           [cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE,
                            cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_UP])
    if not ok:
        raise RuntimeError(f"OpenCV failed to encode crop {path}")
    data = buf.tobytes()
    write_if_changed(path, data)
    return hashlib.sha256(data).hexdigest()
