"""Content digests that make Snakemake rerun a stage only when what it reads changed.

Each rule passes a digest of its inputs as a param; Snakemake records params per
output and reruns a job when they differ, so touching a file does nothing and a stage
that rewrites identical bytes leaves its dependents up to date. File hashes are cached
by (path, size, mtime_ns) in a small SQLite file, so checking a 100k-image dataset for
staleness costs a stat per file, not a read.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
from pathlib import Path
from typing import Iterable

from .imaging import sha256_file
from .tables import read_tsv

_CACHE_ENV = "GANFLOW_HASH_CACHE"
_DEFAULT_CACHE = ".ganflow-cache/hashes.sqlite"
_conn: sqlite3.Connection | None = None
_conn_path: str | None = None


def _cache() -> sqlite3.Connection:
    global _conn, _conn_path
    path = os.environ.get(_CACHE_ENV, _DEFAULT_CACHE)
    if _conn is None or _conn_path != path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        _conn = sqlite3.connect(path, timeout=60, isolation_level=None)
        _conn.execute("PRAGMA journal_mode=WAL")
        _conn.execute("CREATE TABLE IF NOT EXISTS h (path TEXT PRIMARY KEY, size INT, mtime INT, sha TEXT)")
        _conn_path = path
    return _conn


def file_hashes(paths: Iterable[str | os.PathLike]) -> dict[str, str]:
    """sha256 of each existing file ('missing' for absent ones), from the cache when the
    file's size and mtime are unchanged."""
    db = _cache()
    out: dict[str, str] = {}
    fresh: list[tuple[str, int, int, str]] = []
    for p in map(str, paths):
        try:
            st = os.stat(p)
        except OSError:
            out[p] = "missing"
            continue
        key = os.path.abspath(p)
        hit = db.execute("SELECT sha FROM h WHERE path=? AND size=? AND mtime=?",
                         (key, st.st_size, st.st_mtime_ns)).fetchone()
        if hit:
            out[p] = hit[0]
        else:
            out[p] = sha256_file(p)
            fresh.append((key, st.st_size, st.st_mtime_ns, out[p]))
    if fresh:
        db.executemany("INSERT OR REPLACE INTO h VALUES (?,?,?,?)", fresh)
    return out


def digest(paths: Iterable[str | os.PathLike], *, listed: str | None = None) -> str:
    """One short digest of the files' contents (and of the files a TSV lists in column
    `listed`, e.g. the images a shard manifest points to). Directories count by the
    files below them."""
    files = sorted({str(f) for p in paths for f in _expand(p)})
    hashes = file_hashes(files)
    if listed:
        extra = sorted({row[listed] for f in files if f.endswith(".tsv") and hashes[f] != "missing"
                        for row in read_tsv(f) if row.get(listed)})
        hashes.update(file_hashes(extra))
    h = hashlib.sha256()
    for name in sorted(hashes):
        h.update(f"{name}\0{hashes[name]}\n".encode())
    return h.hexdigest()[:20]


def code_digest(*modules: str) -> str:
    """Digest of library modules a rule runs, so editing the library reruns its stages."""
    here = Path(__file__).parent
    h = hashlib.sha256()
    for name in sorted(modules):
        h.update((here / f"{name}.py").read_bytes())
    return h.hexdigest()[:12]


def _expand(path: str | os.PathLike) -> list[str]:
    p = Path(path)
    if p.is_dir():
        return [str(f) for f in p.rglob("*") if f.is_file()]
    return [str(p)]
