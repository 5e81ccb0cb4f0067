"""An embedded Danbooru-style mirror, drawn procedurally, so the demo needs no download.

The mirror imitates what a real Danbooru archive throws at the workflow: the
`original/{id % 1000:04d}/{id}.{ext}` layout, JSON-lines metadata in both the
Danbooru2018-2020 and the Danbooru2021 formats, and a share of junk (duplicates,
grayscale pages, broken files, odd colour modes, malformed metadata lines). The
face drawings (drawing.py) are simple anime-style line art that the anime-face LBP
cascade actually detects, so every stage has real work to do. `truth.tsv` says what
each post is, for tests only: the workflow never reads it.

Everything is drawn from one seeded generator and written with fixed encoder
settings, so a rerun writes identical bytes and a content-keyed workflow stays
up to date.
"""

from __future__ import annotations

import hashlib
import io
import json
import zlib
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Iterator

import numpy as np
from PIL import Image

from .config import defaults
from .drawing import EYES, HAIR, Drawing, draw_manga_page, draw_picture
from .tables import atomic_open, write_tsv

# Defaults of the config sections this module serves (config/schema.yaml).
_DEFAULTS = defaults("demo")

#: truth.tsv: file is relative to the root (where it would be, for `missing`), dup_of the
#: duplicated id, box the drawn face as "x,y,w,h", metadata the JSON-lines file of the post.
TRUTH_COLUMNS = ("id", "kind", "file", "dup_of", "box", "metadata", "note")

#: What a post can be; every kind is present in every mirror.
KINDS = ("face", "grayscale", "monochrome", "exact_dup", "near_dup", "tiny", "truncated",
         "not_image", "cmyk", "png16", "palette", "rating_q", "rating_e", "missing", "malformed")

_NOT_IMAGE = (b"<!DOCTYPE html>\n<html><head><title>404 Not Found</title></head>\n"
              b"<body><h1>Not Found</h1><p>The requested URL was not found on this server.</p></body></html>\n")
_META_TAGS = ("commentary_request", "lowres")
_FILES = ("posts.json", "posts-2021.json")


@dataclass
class _Post:
    """One post of the mirror: its metadata, its file bytes (None: missing) and its truth."""

    id: int
    kind: str
    ext: str
    rating: str
    tags: list[str]
    size: tuple[int, int]
    data: bytes | None = None
    dup_of: int | None = None
    box: tuple[int, int, int, int] | None = None
    note: str = ""


def _encode(img: Image.Image, fmt: str, **options) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **options)
    return buf.getvalue()


def _jpeg(img: Image.Image, quality: int = 92) -> bytes:
    return _encode(img, "JPEG", quality=quality)


def _unique_ids(rng: np.random.Generator, n: int) -> list[int]:
    """Distinct ids below 5 million, so posts scatter over Danbooru's 1000 buckets."""
    seen: set[int] = set()
    while len(seen) < n:
        seen.add(int(rng.integers(1, 5_000_000)))
    return [int(v) for v in rng.permutation(sorted(seen))]


def _credits(rng: np.random.Generator) -> list[str]:
    """Artist, copyright and sometimes meta tags, so tag categories other than general exist."""
    tags = [f"demo_artist_{int(rng.integers(12))}", "original"]
    return (tags + ["commentary_request"]) if rng.random() < 0.3 else tags


def _random_md5(rng: np.random.Generator) -> str:
    """The md5 a post without a file still advertises."""
    return bytes(rng.integers(0, 256, 16, dtype=np.uint8)).hex()


def _picture_post(rng: np.random.Generator, kind: str, ids: Iterator[int], canvas: tuple[int, int],
                  face: tuple[int, int]) -> tuple[_Post, Drawing]:
    """A post whose file is a colour face picture, encoded the way `kind` calls for."""
    dr = draw_picture(rng, canvas, face)
    img, tags = dr.image, list(dr.tags) + _credits(rng)
    post = _Post(next(ids), kind, "jpg", "s", tags, img.size, box=dr.box)
    if kind == "face":
        if rng.random() < 0.15:
            post.ext, post.data = "png", _encode(img, "PNG")
        else:
            post.data = _jpeg(img)
    elif kind in ("rating_q", "rating_e"):
        post.rating = kind[-1]
        post.tags += ["swimsuit", "cleavage"] if kind == "rating_q" else ["nude"]
        post.data = _jpeg(img)
    elif kind == "tiny":
        x, y, s, _ = dr.box
        post.data = _jpeg(img.crop((x, y, x + s, y + s)).resize((24, 24), Image.Resampling.LANCZOS))
        post.size, post.box, post.tags = (24, 24), (0, 0, 24, 24), tags + ["lowres"]
    elif kind == "truncated":
        data = _jpeg(img)
        post.data, post.box, post.note = data[: len(data) // 2], None, "JPEG cut in half"
    elif kind == "cmyk":
        post.data = _jpeg(img.convert("CMYK"))
    elif kind == "png16":
        gray = np.asarray(img.convert("L"), dtype=np.uint16) * 257
        post.ext, post.data = "png", _encode(Image.fromarray(gray), "PNG")
        post.note = "16-bit grayscale (Pillow cannot write 48-bit RGB)"
    elif kind == "palette":
        post.ext, post.data = "png", _encode(img.quantize(colors=64), "PNG")
    else:
        raise ValueError(f"no picture recipe for kind {kind!r}")
    return post, dr


def _make_posts(rng: np.random.Generator, n_faces: int, canvas: tuple[int, int],
                face: tuple[int, int]) -> tuple[list[_Post], list[tuple[str, str, str, str]]]:
    """Every post of the mirror, plus the malformed lines (see `_malformed`)."""
    k = max(1, n_faces // 60)
    singles = ("tiny", "truncated", "not_image", "cmyk", "png16", "palette", "rating_q", "rating_e", "missing")
    ids = iter(_unique_ids(rng, n_faces + 4 * k + len(singles) + 5))
    faces = [_picture_post(rng, "face", ids, canvas, face) for _ in range(n_faces)]
    posts = [p for p, _ in faces]
    for kind in ("tiny", "truncated", "cmyk", "png16", "palette", "rating_q", "rating_e"):
        posts.append(_picture_post(rng, kind, ids, canvas, face)[0])
    for _ in range(k):
        src, _ = faces[int(rng.integers(n_faces))]
        posts.append(_Post(next(ids), "exact_dup", src.ext, src.rating, list(src.tags), src.size,
                           data=src.data, dup_of=src.id, box=src.box))
        src, dr = faces[int(rng.integers(n_faces))]
        f = 1 + rng.choice([-1, 1]) * rng.uniform(0.05, 0.12)
        img = dr.image.resize((round(dr.image.width * f), round(dr.image.height * f)), Image.Resampling.LANCZOS)
        quality = int(rng.choice([70, 75, 80, 85]))
        posts.append(_Post(next(ids), "near_dup", "jpg", src.rating, list(src.tags), img.size,
                           data=_jpeg(img, quality), dup_of=src.id, box=tuple(round(v * f) for v in dr.box),
                           note=f"scaled {f:.3f}, JPEG quality {quality}"))
        page = draw_manga_page(rng, canvas, face)
        posts.append(_Post(next(ids), "grayscale", "jpg", "s", list(page.tags) + _credits(rng), page.image.size,
                           data=_jpeg(page.image, 90), box=page.box))
        w, h = (int(v) for v in rng.integers(canvas[0], canvas[1] + 1, 2))
        flat = np.broadcast_to(rng.integers(0, 256, 3), (h, w, 3)).astype(np.int16)
        if rng.random() < 0.5:  # near-flat: a little sensor-like noise
            flat = flat + rng.integers(-3, 4, (h, w, 3))
        img = Image.fromarray(np.clip(flat, 0, 255).astype(np.uint8))
        posts.append(_Post(next(ids), "monochrome", "jpg", "s",
                           ["no_humans", "simple_background", "abstract"] + _credits(rng), img.size, data=_jpeg(img)))
    posts.append(_Post(next(ids), "not_image", "jpg", "s", ["no_humans", "text_only_page"] + _credits(rng), (640, 480),
                       data=_NOT_IMAGE, note="an HTML error page saved under a .jpg name"))
    hair, eyes = str(rng.choice(list(HAIR))), str(rng.choice(list(EYES)))
    posts.append(_Post(next(ids), "missing", "jpg", "s", ["1girl", "solo", hair, eyes] + _credits(rng), (600, 800),
                       note="metadata only, the file was never downloaded"))
    return posts, _malformed(rng, ids)


def _malformed(rng: np.random.Generator, ids: Iterator[int]) -> list[tuple[str, str, str, str]]:
    """Lines a real metadata dump contains: cut-off JSON, odd ids, paths in file_ext.

    Returned as (metadata file, line, id as written, what is wrong).
    """
    out = []
    for name in _FILES:
        post = _Post(next(ids), "malformed", "jpg", "s", ["1girl", "solo"], (500, 700))
        line = _record(rng, post, name, _random_md5(rng), 123_456, _created_at(name, 1, 2))
        out.append((name, line[: len(line) * 3 // 5], "", "broken JSON (line cut short)"))
    n = next(ids)
    bad_id = f"{n // 1000}x{n % 1000:03d}"
    post = _Post(n, "malformed", "jpg", "s", ["1girl", "solo"], (500, 700))
    record = json.loads(_record(rng, post, _FILES[0], _random_md5(rng), 123_456, _created_at(_FILES[0], 1, 2)))
    record["id"] = bad_id
    out.append((_FILES[0], json.dumps(record), bad_id, "non-integer id"))
    for name, ext in zip(_FILES, ("../../etc/passwd", "jpg/../../x")):
        post = _Post(next(ids), "malformed", ext, "s", ["1girl", "solo"], (500, 700))
        out.append((name, _record(rng, post, name, _random_md5(rng), 123_456, _created_at(name, 1, 2)), str(post.id),
                    f"file_ext {ext!r} escapes the mirror"))
    return out


def _tag_id(name: str) -> int:
    """A stable tag id (the same tag always gets the same id, whatever the seed)."""
    return zlib.crc32(name.encode()) % 900_000 + 1


def _category(name: str) -> int:
    """Danbooru's tag categories: 0 general, 1 artist, 3 copyright, 5 meta."""
    if name.startswith("demo_artist_"):
        return 1
    if name == "original":
        return 3
    return 5 if name in _META_TAGS else 0


def _record(rng: np.random.Generator, post: _Post, file: str, md5: str, file_size: int, created: str) -> str:
    """One JSON line: strings everywhere and a tag list (Danbooru2018-2020), or typed
    fields and space-separated tag strings (Danbooru2021)."""
    score = int(rng.integers(-2, 60))
    uploader = int(rng.integers(1, 600_000))
    tags = sorted(set(post.tags))
    w, h = post.size
    if file == _FILES[0]:
        return json.dumps({
            "id": str(post.id), "created_at": created, "uploader_id": str(uploader), "score": str(score),
            "source": "", "md5": md5, "last_commented_at": "1970-01-01 00:00:00 UTC", "rating": post.rating,
            "image_width": str(w), "image_height": str(h), "is_note_locked": False, "file_ext": post.ext,
            "last_noted_at": "1970-01-01 00:00:00 UTC", "is_rating_locked": False,
            "parent_id": str(post.dup_of or 0) if post.kind == "near_dup" else "0", "has_children": False,
            "approver_id": "0", "file_size": str(file_size), "is_status_locked": False,
            "up_score": str(max(score, 0)), "down_score": str(min(score, 0)), "is_pending": False,
            "is_flagged": False, "is_deleted": False, "updated_at": created, "is_banned": False, "pixiv_id": "0",
            "tags": [{"id": str(_tag_id(t)), "name": t, "category": str(_category(t))} for t in tags],
            "pools": [], "favs": []})
    by_cat = {c: " ".join(t for t in tags if _category(t) == c) for c in (0, 1, 3, 5)}
    return json.dumps({
        "id": post.id, "created_at": created, "uploader_id": uploader, "score": score, "source": "",
        "md5": md5, "rating": post.rating, "image_width": w, "image_height": h, "tag_string": " ".join(tags),
        "fav_count": max(score, 0), "file_ext": post.ext, "parent_id": post.dup_of if post.kind == "near_dup" else None,
        "has_children": False, "file_size": file_size, "up_score": max(score, 0), "down_score": min(score, 0),
        "is_pending": False, "is_flagged": False, "is_deleted": False, "is_banned": False, "pixiv_id": None,
        "tag_count": len(tags), "tag_count_general": len(by_cat[0].split()), "tag_string_general": by_cat[0],
        "tag_string_artist": by_cat[1], "tag_string_copyright": by_cat[3], "tag_string_character": "",
        "tag_string_meta": by_cat[5], "updated_at": created})


def _created_at(file: str, rank: int, n: int) -> str:
    """Creation times that grow with the id, as Danbooru's do: 2006-2020, then 2021."""
    if file == _FILES[0]:
        start, end, fmt = datetime(2006, 1, 1), datetime(2020, 12, 31), "%Y-%m-%d %H:%M:%S UTC"
    else:
        start, end, fmt = datetime(2021, 1, 1), datetime(2021, 12, 31), "%Y-%m-%dT%H:%M:%S.000-05:00"
    return (start + (end - start) * ((rank + 0.5) / max(n, 1))).strftime(fmt)


def _write_bytes(path: Path, data: bytes) -> None:
    """Write atomically, and leave an identical file alone so its mtime does not change."""
    if path.is_file() and path.stat().st_size == len(data) and path.read_bytes() == data:
        return
    with atomic_open(path, "wb") as fh:
        fh.write(data)


def _relpath(post: _Post) -> str:
    return f"original/{post.id % 1000:04d}/{post.id}.{post.ext}"


def make_mirror(root: str | Path, *, n_faces: int = _DEFAULTS["n_faces"], seed: int = _DEFAULTS["seed"],
                canvas: tuple[int, int] = (256, 448), face: tuple[int, int] = (90, 200)) -> dict[str, int]:
    """Write a small Danbooru-style mirror under `root` and return how many posts of each kind.

    `canvas` and `face` are (smallest, largest) side lengths in pixels of the pictures and
    of the face boxes in them. The same arguments always produce the same bytes, and a
    rerun leaves unchanged files untouched; files of an earlier mirror made with other
    arguments are not removed, so give each mirror its own root.
    """
    if n_faces < 1:
        raise ValueError(f"make_mirror: n_faces must be at least 1, got {n_faces}; ask for some faces.")
    for name, (lo, hi), least in (("canvas", canvas, 128), ("face", face, 24)):
        if not least <= lo <= hi:
            raise ValueError(f"make_mirror: {name}={(lo, hi)} must be a (smallest, largest) pair of sizes "
                             f"with the smallest at least {least} pixels.")
    root = Path(root)
    rng = np.random.default_rng(seed)
    posts, malformed = _make_posts(rng, n_faces, canvas, face)

    posts.sort(key=lambda p: p.id)
    n_new = len(posts) // 4  # the newest quarter is in the later (Danbooru2021) format
    lines: dict[str, list[str]] = {name: [] for name in _FILES}
    truth = []
    for rank, post in enumerate(posts):
        file = _FILES[rank >= len(posts) - n_new]
        sub_rank, n = (rank, len(posts) - n_new) if file == _FILES[0] else (rank - len(posts) + n_new, n_new)
        if post.data is None:
            md5, size = _random_md5(rng), int(rng.integers(50_000, 900_000))
        else:
            md5, size = hashlib.md5(post.data).hexdigest(), len(post.data)
            _write_bytes(root / _relpath(post), post.data)
        lines[file].append(_record(rng, post, file, md5, size, _created_at(file, sub_rank, n)))
        truth.append({"id": post.id, "kind": post.kind, "file": _relpath(post), "dup_of": post.dup_of or "",
                      "box": ",".join(map(str, post.box)) if post.box else "", "metadata": file, "note": post.note})
    for file, line, bad_id, note in malformed:
        at = int(rng.integers(0, len(lines[file]) + 1))
        lines[file].insert(at, line)
        truth.append({"id": bad_id, "kind": "malformed", "metadata": file, "note": note})
    for file in _FILES:
        _write_bytes(root / "metadata" / file, "".join(line + "\n" for line in lines[file]).encode())
    write_tsv(root / "truth.tsv", truth, TRUTH_COLUMNS)
    counts = {kind: 0 for kind in KINDS}
    for row in truth:
        counts[row["kind"]] += 1
    return counts
