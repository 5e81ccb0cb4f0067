"""Face crops: lbpcascade_animeface over every selected image of a shard.

The cascade is loaded once per job (per shard), never per image: starting one
process per image, as the usual xargs recipe does, spends most of its time loading
OpenCV and the cascade. Crops are cut from the image after EXIF
orientation and colour conversion to sRGB, so every later stage sees the same pixels.
Boxes are in that upright image's coordinates.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .runlog import SetupError, progress
from .imaging import Encoding, ImageRejected, load_with_encoding, peek_encoding, sha256_file, to_array
from .tables import atomic_path, read_tsv, remove_stale, write_if_changed, write_tsv

log = logging.getLogger(__name__)

# sha256 of each crop file makes the manifest carry its content: the clean stage reruns
# exactly when a crop's pixels change, even if its box and score did not. format, lossless
# and quality describe the source file, so dedupe can keep the best of several copies.
FACE_COLUMNS = ["crop", "id", "source", "path", "box", "score", "sha256", "status", "detail",
                "format", "lossless", "quality"]
CASCADE_SHA256 = "9376d30ac38db6bda2a68b88b3b76bbd7e6aa33af47f7f5c76bc88ca75f1ce30"
CASCADE_URL = ("https://raw.githubusercontent.com/nagadomi/lbpcascade_animeface/"
               "master/lbpcascade_animeface.xml")


def fetch_cascade(dest: Path, url: str = CASCADE_URL, sha256: str = CASCADE_SHA256) -> Path:
    """Download the cascade once and refuse it unless its sha256 matches the pinned one."""
    import urllib.request

    with atomic_path(dest) as tmp:
        try:
            urllib.request.urlretrieve(url, tmp)
        except OSError as exc:
            raise SetupError(f"could not download the face cascade from {url} ({exc}); "
                             "download it by hand or set faces.cascade to a local copy") from exc
        _check_sha256(tmp, sha256, url)
    return dest


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

    enabled: bool = True
    scale_factor: float = 1.1
    min_neighbors: int = 5
    min_size: int = 50
    margin: float = 0.25
    square: bool = True
    max_faces: int = 8


def detect(cascade: cv2.CascadeClassifier, rgb: np.ndarray, p: FaceParams) -> list[tuple[int, int, int, int, float]]:
    """Boxes (x, y, w, h, score) on the histogram-equalised grey image, best first."""
    gray = cv2.equalizeHist(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))
    boxes, _levels, weights = cascade.detectMultiScale3(
        gray, scaleFactor=p.scale_factor, minNeighbors=p.min_neighbors,
        minSize=(p.min_size, p.min_size), outputRejectLevels=True)
    found = [(int(x), int(y), int(w), int(h), float(s))
             for (x, y, w, h), s in zip(np.asarray(boxes).reshape(-1, 4), np.asarray(weights).reshape(-1))]
    return sorted(found, key=lambda b: -b[4])[: p.max_faces]


def crop_box(box: tuple[int, int, int, int], margin: float, square: bool, width: int, height: int) -> tuple[int, int, int, int]:
    """Grow a detection by `margin` of its size on each side, optionally to a square,
    shifted (not shrunk) to stay inside the image where it fits."""
    x, y, w, h = box
    cx, cy = x + w / 2, y + h / 2
    bw, bh = w * (1 + 2 * margin), h * (1 + 2 * margin)
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
    written: set[str] = set()
    for item in progress(read_tsv(ids_tsv), desc=f"faces {Path(ids_tsv).stem}", unit="img", leave=False):
        counts["images"] += 1
        base = {"id": item["id"], "source": item["path"]}
        if not params.enabled:  # already-cropped data: the whole image is the crop
            rows.append(_whole_image_row(base, item))
            counts["crops"] += 1
            continue
        try:
            image, encoding = load_with_encoding(item["path"])
        except ImageRejected as exc:
            rows.append({**base, "crop": "", "path": "", "box": "", "score": "",
                         "status": exc.reason, "detail": exc.detail})
            continue
        base.update(_encoding_cells(encoding))
        rgb = to_array(image)
        faces = detect(cascade, rgb, params)
        if not faces:
            rows.append({**base, "crop": "", "path": "", "box": "", "score": "", "status": "no_face",
                         "detail": f"{image.width}x{image.height}"})
            continue
        counts["with_face"] += 1
        for k, (x, y, w, h, score) in enumerate(faces):
            bx, by, bw, bh = crop_box((x, y, w, h), params.margin, params.square, image.width, image.height)
            crop_id = f"{item['id']}-{k}"
            path = out_dir / f"{crop_id}.png"
            digest = _write_png(rgb[by:by + bh, bx:bx + bw], path)
            written.add(path.name)
            rows.append({**base, "crop": crop_id, "path": str(path), "box": f"{bx},{by},{bw},{bh}",
                         "score": round(score, 3), "sha256": digest, "status": "face", "detail": ""})
            counts["crops"] += 1
    remove_stale(out_dir, written, ["*.png"])
    write_tsv(out_tsv, rows, FACE_COLUMNS)
    return counts


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
    """Write a crop losslessly (unless identical bytes are already there); return its sha256."""
    ok, buf = cv2.imencode(".png", cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR),
                           [cv2.IMWRITE_PNG_COMPRESSION, 3])
    if not ok:
        raise RuntimeError(f"OpenCV failed to encode crop {path}")
    data = buf.tobytes()
    write_if_changed(path, data)
    return hashlib.sha256(data).hexdigest()
