"""Selected ids: metadata (or a plain folder) -> one id list per shard.

Danbooru metadata is messy at scale (broken lines, ids that are not numbers, odd
extensions, posts whose file the mirror lacks), so every post lands either in a shard
list or in the rejection table with its reason; posts filtered out on purpose (rating,
tags) are only counted. The shard lists name only regular files this process can read
(and names a table can hold). A selection with no image at all is a broken setup and
stops here, naming the config key to change.

Reruns follow the sources' content without making each image a Snakemake input (its
per-input checks made a run with nothing to do take 43 s at 100k images once their
times had changed, and grow with the image count): the stage also keeps a per-shard
listing of its files' size, times and sha256 (`shard_content` rehashes only what
changed), and `source_tree` is a cheap digest of which files exist, from the folders'
own modification times.
"""

from __future__ import annotations

import csv
import hashlib
import io
import itertools
import json
import logging
import lzma
import os
import re
import stat
import tarfile
import time
import unicodedata
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Iterable, Iterator, Mapping, Sequence

from .names import ID_MAX_LENGTH, IMAGE_EXTS
from .runlog import SetupError
from .tables import atomic_open, remove_stale, write_tsv

log = logging.getLogger(__name__)

ID_COLUMNS = ["id", "path", "rating", "tags"]
REJECT_COLUMNS = ["source", "line", "id", "reason", "detail"]
# A shard's listing: what its selected files held when last hashed. An entry is trusted
# while the file's size, mtime and ctime (which also moves on chmod, or on a copy that
# restores the mtime) are unchanged, and rehashed otherwise.
LISTING_COLUMNS = ["path", "size", "mtime_ns", "ctime_ns", "sha256"]
# Stale files are hashed in this thread while each takes under SERIAL_HASH_SECONDS (judged
# on the first HASH_PROBE of them), else by HASH_THREADS threads: a slow disk's reads and
# hashlib on big files run outside the GIL and overlap, while small files from the page
# cache took twice as long through a pool (22 vs 10 us each) as in one thread.
HASH_THREADS = 8
SERIAL_HASH_SECONDS = 200e-6
HASH_PROBE = 32
_EXT_RE = re.compile(r"^[a-z0-9]{1,5}$")
_RATINGS = {"s": "s", "safe": "s", "g": "g", "general": "g", "sensitive": "s",
            "q": "q", "questionable": "q", "e": "e", "explicit": "e"}
ALL_RATINGS = frozenset(_RATINGS.values())
# Characters a file name may not hold: they would break a table row or a Snakemake input
# (control characters: tab, newline, escape...; line separators; undecodable bytes).
_BAD_NAME_CATEGORIES = frozenset({"Cc", "Cs", "Zl", "Zp"})
_FILE_KINDS = {stat.S_IFIFO: "a FIFO", stat.S_IFSOCK: "a socket", stat.S_IFCHR: "a character device",
               stat.S_IFBLK: "a block device", stat.S_IFDIR: "a directory"}


def shard_of(key: int, shards: int) -> str:
    """Danbooru buckets files by id % 1000; shards follow the same rule, zero-padded. A
    folder source's key is a hash of the relative path (path_key), not its id: its shard
    then stays put when a name collision later adds a suffix to the id."""
    return f"{key % shards:04d}"


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

    def reason(self, rating: str | None, tags: set[str]) -> str | None:
        """Why a post is filtered out, or None if it is kept. rating is "" when the post's is
        missing or unknown: only a filter that allows every rating lets it pass, since a
        safe-only one cannot prove it safe; None means the source has no ratings (a folder)."""
        if rating is not None and self.ratings and not self.ratings >= ALL_RATINGS and rating not in self.ratings:
            return f"rating_{rating or 'unknown'}"
        if not self.all_of <= tags:
            return "tags_all_of"
        if self.any_of and not (self.any_of & tags):
            return "tags_any_of"
        if self.none_of & tags:
            return "tags_none_of"
        return None


@dataclass
class Selection:
    """The result of the ids stage: kept rows (ID_COLUMNS, plus the shard `key`: the
    Danbooru id, or path_key of a folder file), rejection rows, counts."""

    rows: list[dict] = field(default_factory=list)
    rejected: list[dict] = field(default_factory=list)
    counts: Counter = field(default_factory=Counter)

    def reject(self, source: str, line: int | str, post_id: str, reason: str, detail: str = "") -> None:
        self.rejected.append({"source": escape(source), "line": escape(str(line)), "id": escape(post_id),
                              "reason": reason, "detail": escape(detail[:200])})
        self.counts[f"rejected:{reason}"] += 1


def escape(text: str) -> str:
    """`text` as one printable table cell: control characters and undecodable bytes of a
    file name (or of a broken metadata line) written as Python escapes (\\n, \\t, \\xff).
    """
    if not bad_name(text):
        return text
    text = text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return "".join(ascii(c)[1:-1] if unicodedata.category(c) in _BAD_NAME_CATEGORIES else c for c in text)


def bad_name(name: str) -> bool:
    """Whether a name holds a character that no table cell or Snakemake input may hold."""
    return any(unicodedata.category(c) in _BAD_NAME_CATEGORIES for c in name)


def file_problem(path: Path) -> tuple[str, str] | None:
    """(reason, detail) when `path` is not a regular file this process can read, else None.

    Only what opens is selected: the listing hashes every selected file, and the faces
    stage reads it. FIFOs and devices are never opened (reading a FIFO blocks until
    someone writes to it).
    """
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        try:
            return "broken_link", f"{path} -> {os.readlink(path)}"
        except OSError:  # not a link at all
            pass
        if isinstance(exc, (FileNotFoundError, NotADirectoryError)):
            return "missing_file", str(path)
        return "unreadable", f"{path}: {exc.strerror or exc}"
    if not stat.S_ISREG(mode):
        return "not_a_file", f"{path} is {_FILE_KINDS.get(stat.S_IFMT(mode), 'not a regular file')}"
    try:  # O_NONBLOCK: a file swapped for a FIFO since the stat above still cannot block
        os.close(os.open(path, os.O_RDONLY | os.O_NONBLOCK))
    except OSError as exc:
        return "unreadable", f"{path}: {exc.strerror or exc}"
    return None


# ---------------------------------------------------------------- metadata reading

def iter_metadata(paths: Iterable[Path]) -> Iterator[tuple[str, int, str]]:
    """Yield (source name, line number, raw text line) from .json/.jsonl/.json.xz/.tar.xz files;
    an empty (or blank) line comes as "", so that it is counted rather than lost.

    A file may hold JSON lines or one JSON array, with or without a UTF-8 byte-order mark
    (utf-8-sig drops it; left in, it would break the first post or the whole array);
    tarballs are read member by member so a multi-gigabyte archive is never held in
    memory at once.
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
                            yield from _iter_lines(f"{name}:{member.name}",
                                                   io.TextIOWrapper(fh, "utf-8-sig", "replace"))
        elif name.endswith(".xz"):
            with lzma.open(path, "rt", encoding="utf-8-sig", errors="replace") as fh:
                yield from _iter_lines(name, fh)
        else:
            with open(path, encoding="utf-8-sig", errors="replace") as fh:
                yield from _iter_lines(name, fh)


def _iter_lines(source: str, fh: io.TextIOBase) -> Iterator[tuple[str, int, str]]:
    lines = enumerate(fh, 1)
    for i, line in lines:
        if line.strip():
            break
        yield source, i, ""
    else:
        return
    if line.lstrip().startswith("["):  # a JSON array file: split it into one post per "line"
        try:
            posts = json.loads(line + fh.read())
        except json.JSONDecodeError as exc:
            yield source, i, f"<<broken JSON array: {exc}>>"
            return
        for k, post in enumerate(posts, 1):
            yield source, k, json.dumps(post)
        return
    for i, line in itertools.chain([(i, line)], lines):
        yield source, i, line if line.strip() else ""


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
        tag_string = " ".join(str(t.get("name") or "") if isinstance(t, dict) else str(t) for t in tags)
    else:  # 2021+: space-separated tag_string (or its per-category parts)
        tag_string = post.get("tag_string") or " ".join(
            str(v) for k, v in post.items() if k.startswith("tag_string_") and v)
    names = set(str(tag_string).split())  # a tag holds no whitespace (nor tabs or newlines for the table)
    rating = _RATINGS.get(str(post.get("rating", "")).strip().lower(), "")
    return {"id": image_id, "rating": rating, "tags": names, "file_ext": ext}


# ---------------------------------------------------------------- the two sources

def select_danbooru(root: Path, metadata: Iterable[Path], tag_filter: TagFilter) -> Selection:
    """Read Danbooru metadata and keep posts that pass the filter and exist in the mirror."""
    root = Path(root)
    metadata = [Path(p) for p in metadata]
    _check_root(root)
    if not _is_dir(root / "original"):
        raise SetupError(f"source.root {root} has no original/ folder; set source.root to the "
                         "Danbooru mirror that holds original/<id % 1000>/<id>.<ext>")
    if not metadata:
        raise SetupError(f"no metadata file matches source.metadata under source.root {root}; "
                         "list the JSON files (globs allowed) relative to source.root")
    for path in metadata:
        problem = file_problem(path)
        if problem:
            raise SetupError(f"metadata file {escape(str(path))} cannot be read ({problem[0]}); "
                             "fix source.metadata or the file")
    sel = Selection()
    seen: set[int] = set()
    for source, line_no, text in iter_metadata(metadata):
        if not text:
            sel.counts["empty_lines"] += 1
            continue
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
        problem = file_problem(path)
        if problem:
            sel.reject(source, line_no, str(image_id), *problem)
            continue
        sel.counts["found"] += 1
        sel.rows.append({"id": image_id, "path": str(path), "rating": post["rating"],
                         "tags": " ".join(sorted(post["tags"])), "key": image_id})
    _check_selected(sel, "source.metadata", f"source.root {root} (the mirror that holds original/)")
    return sel


def path_key(relative: str) -> int:
    """The shard key of a folder source's file: a hash of its relative path, so that shards
    stay balanced and a file keeps its shard whatever else the folder holds."""
    return int(hashlib.sha256(relative.encode("utf-8")).hexdigest()[:15], 16)


def folder_slug(relative: str) -> str:
    """The readable part of a folder file's id: its relative path without the extension,
    folded to ASCII (accents dropped), every run of other characters (/, spaces, symbols)
    as one "_", runs of dots as one dot, no dot, dash or "_" at either end. Lossy: two paths
    may share a slug, and folder_ids tells them apart."""
    stem = PurePosixPath(relative).with_suffix("").as_posix()
    ascii_ = "".join(c for c in unicodedata.normalize("NFKD", stem) if not unicodedata.combining(c))
    slug = re.sub(r"\.{2,}", ".", re.sub(r"[^A-Za-z0-9._-]+", "_", ascii_))
    return slug.strip("._-")


def folder_ids(relatives: Iterable[str]) -> dict[str, str]:
    """Readable, unique, file-name-safe ids for the files of a folder source (relative path ->
    id): the slug of the path, with "_" and the first 8 hex digits of the path's sha256 where
    the slug alone would not do: shared with another path (compared case-insensitively, as
    on macOS and Windows disks), longer than the limit (cut to its end, the file name), or
    with nothing readable left of the file name itself (`groups/まどか.jpg` is not just
    `groups`). Suffixed ids that clash again get longer hashes. The same folder gives the
    same ids; a new file whose slug clashes with an existing one suffixes both."""
    relatives = list(relatives)
    slugs = {r: folder_slug(r) for r in relatives}
    ids = {r: s if len(s) <= ID_MAX_LENGTH and folder_slug(PurePosixPath(r).name) else _hashed(r, s, 8)
           for r, s in slugs.items()}
    for digits in (8, 16, 64):
        seen = Counter(i.lower() for i in ids.values())
        for r in [r for r, i in ids.items() if seen[i.lower()] > 1]:
            ids[r] = _hashed(r, slugs[r], digits)
    return ids


def _hashed(relative: str, slug: str, digits: int) -> str:
    """`slug` cut to its end so that "_" and `digits` hex digits of the path's sha256 fit the limit."""
    digest = hashlib.sha256(relative.encode("utf-8")).hexdigest()[:digits]
    head = slug[-(ID_MAX_LENGTH - digits - 1):].lstrip("._-") if slug else ""
    return f"{head}_{digest}" if head else digest


def select_folder(root: Path, tag_filter: TagFilter) -> Selection:
    """Walk a directory tree of images; tags come from optional sidecar .txt files.

    Every entry other than a directory, a dotfile or a sidecar is a post: a non-image, a
    name no table can hold, a broken link, a FIFO, an unreadable file or directory each
    get a rejection row. Folders have no ratings, so ids.ratings does not apply.
    """
    root = Path(root)
    _check_root(root)
    sel = Selection()
    relatives: list[str] = []
    for path, error in _walk(root):
        relative = path.relative_to(root).as_posix()
        ext = path.suffix.lower().lstrip(".")
        if error is not None:
            sel.counts["posts"] += 1
            sel.reject(str(root), relative, "", "unreadable_dir", error.strerror or str(error))
            continue
        if ext == "txt" or path.name.startswith("."):
            continue
        sel.counts["posts"] += 1
        if bad_name(relative):
            sel.reject(str(root), relative, "", "bad_file_name",
                       f"{relative} (rename it: control characters or non-UTF-8 bytes)")
            continue
        if ext not in IMAGE_EXTS:
            sel.reject(str(root), relative, "", "not_an_image_ext")
            continue
        try:
            tags = _sidecar_tags(path)
        except ValueError as exc:
            sel.reject(str(root), relative, "", "bad_sidecar", str(exc))
            continue
        why = tag_filter.reason(None, tags)
        if why:
            sel.counts[f"filtered:{why}"] += 1
            continue
        sel.counts["selected"] += 1
        problem = file_problem(path)
        if problem:
            sel.reject(str(root), relative, "", *problem)
            continue
        sel.counts["found"] += 1
        sel.rows.append({"path": str(path), "rating": "", "tags": " ".join(sorted(tags)), "key": path_key(relative)})
        relatives.append(relative)
    _check_selected(sel, f"source.root {root}", f"source.root {root}")
    names = folder_ids(relatives)  # an id depends on which other names clash with its path's
    for row, relative in zip(sel.rows, relatives):
        row["id"] = names[relative]
    return sel


def _walk(root: Path) -> Iterator[tuple[Path, OSError | None]]:
    """(path, None) for every entry below `root` that is not a directory, in name order, plus
    directories named like images (a row each: not_a_file); (directory, error) for one that
    cannot be listed. Symlinked directories outside `root` are followed (once each); those
    inside it are not, as their files are listed under their own paths."""
    real_root = root.resolve()
    followed: set[Path] = set()

    def walk(top: Path) -> Iterator[tuple[Path, OSError | None]]:
        try:
            with os.scandir(top) as listing:
                entries = sorted(listing, key=lambda e: e.name)
        except OSError as exc:
            yield top, exc
            return
        for entry in entries:
            path = Path(entry.path)
            try:
                is_dir = entry.is_dir()  # from the listing itself, no system call, for a plain entry
            except OSError:  # a symlink loop: no directory either, and a broken_link row
                is_dir = False
            if not is_dir:
                yield path, None
                continue
            if path.suffix.lower().lstrip(".") in IMAGE_EXTS:
                yield path, None
            if entry.is_symlink():
                real = path.resolve()
                if real == real_root or real_root in real.parents or real in followed:
                    continue
                followed.add(real)
            yield from walk(path)

    yield from walk(root)


def has_sidecar_tags(root: str | Path) -> bool:
    """Whether a folder source carries any tags (a .txt beside an image): without them no
    tag direction can be learned, which is better said before training than after. Stops
    at the first one found."""
    return any(path.suffix.lower() == ".txt" and error is None for path, error in _walk(Path(root)))


def _sidecar_tags(image: Path) -> set[str]:
    """Tags from `image`'s same-name .txt file (none without one); ValueError when it exists
    but cannot be read."""
    sidecar = image.with_suffix(".txt")
    problem = file_problem(sidecar)
    if problem and problem[0] == "missing_file":
        return set()
    if problem:
        raise ValueError(f"{sidecar.name}: {problem[0]}")
    try:
        text = sidecar.read_text("utf-8", "replace")
    except OSError as exc:
        raise ValueError(f"{sidecar.name}: {exc.strerror or exc}") from exc
    return set(re.split(r"[,\s]+", text)) - {""}


def _check_root(root: Path) -> None:
    if bad_name(str(root)):
        raise SetupError(f"source.root {escape(str(root))} holds a control character or bytes that are "
                         "not UTF-8, which no manifest can hold; rename the folder or link it under a plain name")
    if not _is_dir(root):
        raise SetupError(f"source.root {root} does not exist or is not a directory; "
                         "set source.root to the folder that holds your images")


def _is_dir(path: Path) -> bool:
    try:
        return stat.S_ISDIR(path.stat().st_mode)
    except OSError:
        return False


def _check_selected(sel: Selection, posts_in: str, files_in: str) -> None:
    """Stop on a selection without a single image: every later stage would run empty."""
    if sel.rows:
        return
    counts = ", ".join(f"{k} {v}" for k, v in sorted(sel.counts.items())) or "nothing"
    if not sel.counts["posts"]:
        fix = f"found no post in {posts_in}"
    elif sel.counts["selected"]:
        fix = f"none of the {sel.counts['selected']} selected posts has a readable image file; check {files_in}"
    elif any(k.startswith("filtered:") for k in sel.counts):
        fix = "the filters drop every post; loosen ids.ratings, ids.all_of, ids.any_of or ids.none_of"
    else:
        fix = f"every post was rejected; check {posts_in}"
    raise SetupError(f"the ids stage selected no image ({counts}): {fix}")


def source_tree(root: str | Path, kind: str) -> str:
    """Digest of the source tree's folders: path, mode and modification time of each.

    A folder's mtime moves whenever an entry in it is added, removed or renamed (a file
    copied in, a broken link, a FIFO), so the ids stage reruns for those and for nothing
    that leaves the folders as they are: touching or editing files (the listing sees
    edits), or changing a file's permissions (`shard_content` sees a selected file become
    unreadable; a rejected one made readable again is picked up once its folder is
    touched). Only folders are stat-ed: the cost grows with the folder count, and with
    the file count only by listing entries to find the subfolders.
    """
    root = Path(root)
    top = root / "original" if kind == "danbooru" else root
    real_root = top.resolve()
    followed: set[Path] = set()
    h = hashlib.sha256()

    def visit(folder: str, relative: str) -> None:
        try:
            st = os.stat(folder)
            with os.scandir(folder) as listing:
                subfolders = sorted(e.name for e in listing if _entry_is_dir(e))
        except OSError as exc:
            h.update(os.fsencode(relative) + f" error {exc.errno}\n".encode())
            return
        h.update(os.fsencode(relative) + f" {st.st_mode:o} {st.st_mtime_ns}\n".encode())
        for name in subfolders:
            path = os.path.join(folder, name)
            if os.path.islink(path):  # followed once if outside the tree, as _walk does
                real = Path(path).resolve()
                if real == real_root or real_root in real.parents or real in followed:
                    continue
                followed.add(real)
            visit(path, f"{relative}/{name}")

    visit(str(top), ".")
    return h.hexdigest()[:20]


def _entry_is_dir(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir()  # from the listing itself, no system call, for a plain entry
    except OSError:  # a symlink loop
        return False


# A listing entry: (path, size, mtime_ns, ctime_ns, sha256), as the strings of its row.
Entry = tuple[str, str, str, str, str]


def _file_entry(path: str) -> Entry:
    """A listing entry for `path`, hashed now; sha256 "" when it is no readable regular file
    (missing, a FIFO, permissions), which no content hashes to, so its shard reruns and
    the faces stage reports the file. Opened without blocking, and stat-ed through the
    open file, so the times belong to the bytes hashed."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return path, "", "", "", ""
    try:
        st = os.fstat(fd)
        digest = ""
        if stat.S_ISREG(st.st_mode):
            h = hashlib.sha256()
            chunk = min(st.st_size + 1, 1 << 20)  # a small file in one read, no big buffer
            while data := os.read(fd, chunk):
                h.update(data)
            digest = h.hexdigest()
    except OSError:
        return path, "", "", "", ""
    finally:
        os.close(fd)
    return path, str(st.st_size), str(st.st_mtime_ns), str(st.st_ctime_ns), digest


def _unchanged(entry: Entry | None, path: str) -> bool:
    """Whether `path` still has the size and times its listing entry was hashed at."""
    if entry is None or not entry[4]:
        return False
    try:
        st = os.stat(path)
    except OSError:
        return False
    return entry[1:4] == (str(st.st_size), str(st.st_mtime_ns), str(st.st_ctime_ns))


def _column_rows(path: Path) -> tuple[list[str], list[list[str]]]:
    """Header and rows of a TSV (an ids table or a listing), as lists: csv.reader is several
    times faster than read_tsv's dicts, which counts on a check of millions of rows."""
    with open(path, encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh, delimiter="\t")
        return next(reader, []), list(reader)


def read_listing(path: Path) -> dict[str, Entry]:
    """path -> entry of a listing; a missing or damaged listing is an empty one (it is a
    cache of hashes: what it lacks is hashed again)."""
    try:
        header, rows = _column_rows(path)
        if header != LISTING_COLUMNS:
            return {}
        return {row[0]: tuple(row) for row in rows if len(row) == len(LISTING_COLUMNS)}
    except (OSError, UnicodeDecodeError, csv.Error):
        return {}


def _write_listing(path: Path, entries: Iterable[Entry]) -> None:
    """Tuples straight to rows, as _column_rows reads them back: write_tsv's dicts and cell
    checks took most of the time of a listing rewritten after a touch (the paths come from
    the ids table, whose cells write_tsv has checked already)."""
    with atomic_open(path) as fh:
        writer = csv.writer(fh, delimiter="\t", lineterminator="\n")
        writer.writerow(LISTING_COLUMNS)
        writer.writerows(entries)


def listing_entries(paths: Sequence[str], known: Mapping[str, Entry]) -> list[Entry]:
    """The entries of `paths`: those of `known` whose file is unchanged, the rest hashed."""
    entries = [known.get(p) for p in paths]
    stale = [i for i, (p, e) in enumerate(zip(paths, entries)) if not _unchanged(e, p)]
    started = time.perf_counter()
    for i in stale[:HASH_PROBE]:
        entries[i] = _file_entry(paths[i])
    stale = stale[HASH_PROBE:]
    if stale and (time.perf_counter() - started) / HASH_PROBE < SERIAL_HASH_SECONDS:
        for i in stale:
            entries[i] = _file_entry(paths[i])
    elif stale:  # a slice per thread: a future per file would cost more than hashing a small one
        slices = [stale[k::HASH_THREADS] for k in range(HASH_THREADS)]
        with ThreadPoolExecutor(HASH_THREADS) as pool:
            for part, hashed in zip(slices, pool.map(lambda part: [_file_entry(paths[i]) for i in part], slices)):
                for i, entry in zip(part, hashed):
                    entries[i] = entry
    return entries


def shard_content(ids_tsv: Path, listing: Path) -> str:
    """Digest of the content of a shard's selected files: changes when one's bytes change,
    not when it is touched or copied. Costs a stat per file plus a hash of each file
    whose size or times changed; the listing keeps those hashes (rewritten only then), so
    a touch costs one hash once, not one per run."""
    header, rows = _column_rows(ids_tsv)
    column = header.index("path")
    paths = [row[column] for row in rows]
    known = read_listing(listing)
    entries = listing_entries(paths, known)
    if len(known) != len(entries) or any(known.get(e[0]) != e for e in entries):
        _write_listing(listing, entries)
    h = hashlib.sha256()
    for entry in entries:
        h.update(os.fsencode(entry[0]) + f"\t{entry[4]}\n".encode())
    return h.hexdigest()[:20]


def _raw_id(text: str) -> str:
    match = re.search(r'"id"\s*:\s*"?([^",}]{0,40})', text)
    return match.group(1) if match else ""


# ---------------------------------------------------------------- writing

def _by_shard(sel: Selection, shards: int) -> dict[str, list[dict]]:
    by_shard: dict[str, list[dict]] = {shard_of(i, shards): [] for i in range(shards)}
    for row in sorted(sel.rows, key=lambda r: r["id"]):
        by_shard[shard_of(row["key"], shards)].append(row)
    return by_shard


def write_selection(sel: Selection, out_dir: Path, shards: int) -> dict:
    """Write {shard}.tsv for every shard (empty ones too), rejected.tsv and summary.json."""
    for shard, rows in _by_shard(sel, shards).items():
        write_tsv(Path(out_dir) / f"{shard}.tsv", rows, ID_COLUMNS)
    write_tsv(Path(out_dir) / "rejected.tsv", sel.rejected, REJECT_COLUMNS)
    counts = dict(sorted(sel.counts.items()))
    with atomic_open(Path(out_dir) / "summary.json") as fh:
        json.dump(counts, fh, indent=1)
    for key, n in counts.items():
        log.info("ids %s: %d", key, n)
    return counts


def write_listings(sel: Selection, listing_dir: Path, shards: int) -> None:
    """Write every shard's listing ({shard}.tsv in `listing_dir`), hashing only the files
    that no previous listing holds unchanged: the listings are no declared output, which
    Snakemake would delete before this stage reruns, so that one new file in a million
    costs one hash, not a million."""
    listing_dir = Path(listing_dir)
    known: dict[str, Entry] = {}
    for path in sorted(listing_dir.glob("*.tsv")):
        known.update(read_listing(path))
    by_shard = _by_shard(sel, shards)
    paths = [row["path"] for rows in by_shard.values() for row in rows]
    entries = listing_entries(paths, known)
    hashed = sum(1 for e in entries if known.get(e[0]) is not e)
    rest = iter(entries)
    for shard, rows in by_shard.items():
        _write_listing(listing_dir / f"{shard}.tsv", [next(rest) for _ in rows])
    remove_stale(listing_dir, {f"{shard}.tsv" for shard in by_shard}, ["*.tsv"])
    log.info("listing: %d files, %d hashed (new or changed), the rest as listed before", len(paths), hashed)
