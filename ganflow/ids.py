"""Selected ids: metadata (or a plain folder) -> one id list per shard.

Danbooru metadata is messy at scale (broken lines, ids that are not numbers, odd
extensions, posts whose file the mirror lacks), so every post lands either in a shard
list or in the rejection table with its reason; posts filtered out on purpose (rating,
tags) are only counted.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import lzma
import re
import tarfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

from .tables import atomic_open, write_tsv

log = logging.getLogger(__name__)

ID_COLUMNS = ["id", "path", "rating", "tags"]
REJECT_COLUMNS = ["source", "line", "id", "reason", "detail"]
IMAGE_EXTS = frozenset({"jpg", "jpeg", "png", "gif", "webp", "bmp", "tif", "tiff"})
_EXT_RE = re.compile(r"^[a-z0-9]{1,5}$")
_RATINGS = {"s": "s", "safe": "s", "g": "g", "general": "g", "sensitive": "s",
            "q": "q", "questionable": "q", "e": "e", "explicit": "e"}


def shard_of(image_id: int, shards: int) -> str:
    """Danbooru buckets files by id % 1000; shards follow the same rule, zero-padded."""
    return f"{image_id % shards:04d}"


@dataclass(frozen=True)
class TagFilter:
    """Which posts to keep: allowed ratings, and tags that must / may / must not appear."""

    ratings: frozenset[str] = frozenset({"s", "g"})
    all_of: frozenset[str] = frozenset()
    any_of: frozenset[str] = frozenset()
    none_of: frozenset[str] = frozenset()

    @classmethod
    def from_config(cls, cfg: dict) -> "TagFilter":
        return cls(ratings=frozenset(_RATINGS.get(r, r) for r in cfg.get("ratings", ["s", "g"])),
                   all_of=frozenset(cfg.get("all_of", [])),
                   any_of=frozenset(cfg.get("any_of", [])),
                   none_of=frozenset(cfg.get("none_of", [])))

    def reason(self, rating: str, tags: set[str]) -> str | None:
        """Why a post is filtered out, or None if it is kept. Unknown ratings pass."""
        if rating and self.ratings and rating not in self.ratings:
            return f"rating_{rating}"
        if not self.all_of <= tags:
            return "tags_all_of"
        if self.any_of and not (self.any_of & tags):
            return "tags_any_of"
        if self.none_of & tags:
            return "tags_none_of"
        return None


@dataclass
class Selection:
    """The result of the ids stage: kept rows per shard, rejection rows, counts."""

    rows: list[dict] = field(default_factory=list)
    rejected: list[dict] = field(default_factory=list)
    counts: Counter = field(default_factory=Counter)

    def reject(self, source: str, line: int | str, post_id: str, reason: str, detail: str = "") -> None:
        self.rejected.append({"source": source, "line": line, "id": post_id,
                              "reason": reason, "detail": detail[:200]})
        self.counts[f"rejected:{reason}"] += 1


# ---------------------------------------------------------------- metadata reading

def iter_metadata(paths: Iterable[Path]) -> Iterator[tuple[str, int, str]]:
    """Yield (source name, line number, raw text line) from .json/.jsonl/.json.xz/.tar.xz files.

    A file may hold JSON lines or one JSON array; tarballs are read member by member so a
    multi-gigabyte archive is never held in memory at once.
    """
    for path in paths:
        path = Path(path)
        name = path.name
        if name.endswith((".tar.xz", ".tar.gz", ".tar", ".tgz")):
            with tarfile.open(path, "r:*") as tar:
                for member in tar:
                    if member.isfile() and member.name.endswith((".json", ".jsonl")):
                        fh = tar.extractfile(member)
                        if fh is not None:
                            yield from _iter_lines(f"{name}:{member.name}", io.TextIOWrapper(fh, "utf-8", "replace"))
        elif name.endswith(".xz"):
            with lzma.open(path, "rt", encoding="utf-8", errors="replace") as fh:
                yield from _iter_lines(name, fh)
        else:
            with open(path, encoding="utf-8", errors="replace") as fh:
                yield from _iter_lines(name, fh)


def _iter_lines(source: str, fh: io.TextIOBase) -> Iterator[tuple[str, int, str]]:
    first = fh.read(1)
    while first.isspace():
        first = fh.read(1)
    if first == "[":  # a JSON array file: split it into one post per "line"
        try:
            posts = json.loads(first + fh.read())
        except json.JSONDecodeError as exc:
            yield source, 1, f"<<broken JSON array: {exc}>>"
            return
        for i, post in enumerate(posts, 1):
            yield source, i, json.dumps(post)
        return
    for i, line in enumerate(_prepend(first, fh), 1):
        if line.strip():
            yield source, i, line


def _prepend(first: str, fh: io.TextIOBase) -> Iterator[str]:
    rest = fh.readline()
    yield first + rest
    yield from fh


def parse_post(text: str) -> dict:
    """Normalise one post of either Danbooru format to {id, rating, tags, file_ext}.

    Raises ValueError with a reason slug when the post cannot be used.
    """
    try:
        post = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError("malformed_json") from exc
    if not isinstance(post, dict):
        raise ValueError("malformed_json")
    raw_id = post.get("id")
    try:
        image_id = int(str(raw_id).strip())
    except (TypeError, ValueError):
        raise ValueError("bad_id") from None
    if image_id <= 0 or str(raw_id).strip().lstrip("+") != str(image_id):
        raise ValueError("bad_id")
    ext = str(post.get("file_ext", "")).strip().lower()
    if not _EXT_RE.match(ext):
        raise ValueError("bad_file_ext")
    if ext not in IMAGE_EXTS:
        raise ValueError("not_an_image_ext")
    tags = post.get("tags")
    if isinstance(tags, list):  # 2018-2020: [{"id", "name", "category"}]
        names = {t.get("name", "") if isinstance(t, dict) else str(t) for t in tags}
    else:  # 2021+: space-separated tag_string (or its per-category parts)
        tag_string = post.get("tag_string") or " ".join(
            str(v) for k, v in post.items() if k.startswith("tag_string_") and v)
        names = set(str(tag_string).split())
    names.discard("")
    rating = _RATINGS.get(str(post.get("rating", "")).strip().lower(), "")
    return {"id": image_id, "rating": rating, "tags": names, "file_ext": ext}


# ---------------------------------------------------------------- the two sources

def select_danbooru(root: Path, metadata: Iterable[Path], tag_filter: TagFilter) -> Selection:
    """Read Danbooru metadata and keep posts that pass the filter and exist in the mirror."""
    root = Path(root)
    sel = Selection()
    seen: set[int] = set()
    for source, line_no, text in iter_metadata(metadata):
        sel.counts["posts"] += 1
        try:
            post = parse_post(text)
        except ValueError as exc:
            sel.reject(source, line_no, _raw_id(text), str(exc), text.strip()[:120])
            continue
        image_id = post["id"]
        if image_id in seen:
            sel.reject(source, line_no, str(image_id), "duplicate_id")
            continue
        seen.add(image_id)
        why = tag_filter.reason(post["rating"], post["tags"])
        if why:
            sel.counts[f"filtered:{why}"] += 1
            continue
        sel.counts["selected"] += 1
        # Danbooru layout; the id is a validated int and the extension a short [a-z0-9]
        # word, so this path cannot escape the mirror.
        path = root / "original" / f"{image_id % 1000:04d}" / f"{image_id}.{post['file_ext']}"
        if not path.is_file():
            sel.reject(source, line_no, str(image_id), "missing_file", str(path))
            continue
        sel.counts["found"] += 1
        sel.rows.append({"id": image_id, "path": str(path), "rating": post["rating"],
                         "tags": " ".join(sorted(post["tags"]))})
    return sel


def folder_id(relative: str) -> int:
    """A stable positive id for a file of a plain folder, from its relative path."""
    return int(hashlib.sha256(relative.encode("utf-8")).hexdigest()[:15], 16) or 1


def select_folder(root: Path, tag_filter: TagFilter) -> Selection:
    """Walk a directory tree of images; tags come from optional sidecar .txt files."""
    root = Path(root)
    sel = Selection()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        ext = path.suffix.lower().lstrip(".")
        if ext == "txt" or path.name.startswith("."):
            continue
        relative = path.relative_to(root).as_posix()
        sel.counts["posts"] += 1
        if ext not in IMAGE_EXTS:
            sel.reject(str(root), relative, "", "not_an_image_ext")
            continue
        sidecar = path.with_suffix(".txt")
        tags = set(re.split(r"[,\s]+", sidecar.read_text("utf-8", "replace"))) if sidecar.is_file() else set()
        tags.discard("")
        why = tag_filter.reason("", tags)
        if why:
            sel.counts[f"filtered:{why}"] += 1
            continue
        sel.counts["selected"] += 1
        sel.counts["found"] += 1
        sel.rows.append({"id": folder_id(relative), "path": str(path), "rating": "",
                         "tags": " ".join(sorted(tags))})
    return sel


def source_listing(root: str | Path, kind: str) -> str:
    """Digest of which files the source holds (names only, no reads): adding or removing
    files changes it and reruns the ids stage; editing one does not (the faces stage sees that)."""
    root = Path(root)
    top = root / "original" if kind == "danbooru" else root
    h = hashlib.sha256()
    for path in sorted(p.relative_to(top).as_posix() for p in top.rglob("*") if p.is_file()):
        h.update(path.encode("utf-8", "surrogateescape") + b"\n")
    return h.hexdigest()[:20]


def _raw_id(text: str) -> str:
    match = re.search(r'"id"\s*:\s*"?([^",}]{0,40})', text)
    return match.group(1) if match else ""


# ---------------------------------------------------------------- writing

def write_selection(sel: Selection, out_dir: Path, shards: int) -> dict:
    """Write {shard}.tsv for every shard (empty ones too), rejected.tsv and summary.json."""
    by_shard: dict[str, list[dict]] = {shard_of(i, shards): [] for i in range(shards)}
    for row in sorted(sel.rows, key=lambda r: r["id"]):
        by_shard[shard_of(row["id"], shards)].append(row)
    for shard, rows in by_shard.items():
        write_tsv(Path(out_dir) / f"{shard}.tsv", rows, ID_COLUMNS)
    write_tsv(Path(out_dir) / "rejected.tsv", sel.rejected, REJECT_COLUMNS)
    counts = dict(sorted(sel.counts.items()))
    with atomic_open(Path(out_dir) / "summary.json") as fh:
        json.dump(counts, fh, indent=1)
    for key, n in counts.items():
        log.info("select %s: %d", key, n)
    return counts
