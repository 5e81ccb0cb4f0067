"""Manifests (tab-separated tables), npz files and crash-safe writes shared by every stage.

Stages talk to each other through small TSV manifests instead of globbing
directories, so a stage's output can be listed and hashed without touching images.
"""

from __future__ import annotations

import contextlib
import csv
import os
import tempfile
import urllib.request
import zipfile
from pathlib import Path
from typing import IO, Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np

from .runlog import SetupError

csv.field_size_limit(1 << 30)
_UMASK = os.umask(0)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary sibling path that is renamed onto `path` only on success.

    A killed job then leaves either the old file or nothing, never half a file that a
    later run would trust.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp" + path.suffix)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; outputs should be as shareable as any file
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def download(url: str, dest: str | os.PathLike, check: Callable[[Path], None], what: str, remedy: str) -> Path:
    """Fetch `url` to `dest` once, kept only if `check` accepts it (it raises otherwise);
    a failed download is one sentence naming `what` and the `remedy`."""
    with atomic_path(dest) as tmp:
        try:
            urllib.request.urlretrieve(url, tmp)
        except OSError as exc:
            raise SetupError(f"could not download {what} from {url} ({exc}); {remedy}") from exc
        check(tmp)
    return Path(dest)


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w") -> Iterator[IO]:
    """Open a file for writing that appears under its name only once fully written."""
    with atomic_path(path) as tmp:
        kwargs = {} if "b" in mode else {"encoding": "utf-8", "newline": ""}
        with open(tmp, mode, **kwargs) as fh:
            yield fh


def write_if_changed(path: str | os.PathLike, data: bytes) -> None:
    """Write atomically, leaving an identical existing file untouched so a rerun that
    produces the same bytes keeps the file (and its time) as it was."""
    path = Path(path)
    if path.is_file() and path.stat().st_size == len(data) and path.read_bytes() == data:
        return
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def remove_stale(directory: str | os.PathLike, keep: set[str], patterns: Sequence[str]) -> None:
    """Delete files matching `patterns` in `directory` that this run did not write, so a
    rerun never leaves outputs of a previous run behind."""
    for pattern in patterns:
        for path in Path(directory).glob(pattern):
            if path.name not in keep:
                path.unlink()


def write_tsv(path: str | os.PathLike, rows: Iterable[Mapping], columns: Sequence[str]) -> int:
    """Write rows (dicts) as a TSV with a header, atomically; return the row count."""
    n = 0
    with atomic_open(path) as fh:
        writer = csv.DictWriter(fh, fieldnames=list(columns), delimiter="\t",
                                lineterminator="\n", extrasaction="raise")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _cell(row.get(k, "")) for k in columns})
            n += 1
    return n


def read_tsv(path: str | os.PathLike) -> list[dict[str, str]]:
    """Read a TSV written by write_tsv into a list of dicts (all values are strings)."""
    with open(path, encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


def _cell(value) -> str:
    """Render one value; tabs and newlines would break the table, so they are refused."""
    if value is None:
        return ""
    if isinstance(value, float):
        text = f"{value:.6g}"
    elif isinstance(value, bool):
        text = "1" if value else "0"
    else:
        text = str(value)
    if "\t" in text or "\n" in text:
        raise ValueError(f"a manifest cell may not hold tabs or newlines: {text!r}")
    return text


def save_npz(path: str | os.PathLike, arrays: dict[str, np.ndarray]) -> Path:
    """np.savez with fixed member times and order: numpy stamps the current time into the
    zip, so identical arrays would give different bytes (and rerun everything after)."""
    path = Path(path)
    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        for name in sorted(arrays):
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            with zf.open(info, "w") as fh:
                np.lib.format.write_array(fh, np.asarray(arrays[name]), allow_pickle=False)
    return path


def load_npz(path: str | os.PathLike, what: str) -> dict[str, np.ndarray]:
    """All arrays of an npz written by save_npz; a missing or foreign file is a broken setup."""
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise SetupError(f"cannot read {path} ({exc}); it is not a ganflow {what} file, rebuild it") from exc
