"""What a workflow job depends on besides its input files, as values Snakemake can compare.

Snakemake reruns a job when a recorded param changes, so each rule carries the digest of
the code it really runs: its adapter script and every module of this package that the
adapter imports, directly or through other modules (read from the import statements, so
the list cannot go stale). Editing any of them reruns exactly the jobs that run it; touching
or checking out files reruns nothing. Params are made canonical (sorted mappings), so
reordering keys in the config reruns nothing either.
"""

from __future__ import annotations

import ast
import hashlib
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any


def _imported_names(tree: ast.AST, package: str, in_package: bool) -> Iterator[str]:
    """Candidate module names of `package` that a parsed file imports (also inside functions)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                top, _, rest = alias.name.partition(".")
                if top == package:
                    yield rest.split(".")[0] if rest else "__init__"
        elif isinstance(node, ast.ImportFrom):
            relative = node.level == 1 and in_package
            absolute = node.level == 0 and node.module is not None and node.module.split(".")[0] == package
            if not (relative or absolute):
                continue
            inner = node.module if relative else node.module.partition(".")[2]
            yield "__init__"
            if inner:
                yield inner.split(".")[0]
            else:  # `from ganflow import a, b` / `from . import a`: the names are modules
                yield from (alias.name for alias in node.names)


@lru_cache(maxsize=None)
def _direct_imports(path: Path, package: str, in_package: bool, mtime_ns: int) -> tuple[str, ...]:
    """The candidate module names one file imports; parsed once per process and version
    (every rule's digest walks the same library modules)."""
    tree = ast.parse(path.read_bytes(), filename=str(path))
    return tuple(_imported_names(tree, package, in_package))


def imported_modules(source: str | Path, package_dir: str | Path) -> list[str]:
    """Sorted names of the modules in `package_dir` that `source` imports, transitively."""
    package_dir = Path(package_dir)
    seen: set[str] = set()
    todo = [Path(source)]
    while todo:
        path = todo.pop()
        names = _direct_imports(path, package_dir.name, path.parent == package_dir, path.stat().st_mtime_ns)
        for name in names:
            module = package_dir / f"{name}.py"
            if name not in seen and module.is_file():
                seen.add(name)
                todo.append(module)
    return sorted(seen)


@lru_cache(maxsize=None)
def _file_digest(path: Path, mtime_ns: int, size: int, inode: int) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _sha256(path: Path) -> str:
    """sha256 of a file, read once per process and version (time, size, inode) of the file."""
    st = path.stat()
    return _file_digest(path, st.st_mtime_ns, st.st_size, st.st_ino)


def files_digest(paths: list[str]) -> str:
    """One digest of the named files' bytes, a missing file counting as missing: the value
    of a param that reruns a job exactly when the content of those inputs changed."""
    h = hashlib.sha256()
    for name in sorted(paths):
        try:
            sha = _sha256(Path(name))
        except OSError:
            sha = "missing"
        h.update(f"{name}\0{sha}\n".encode())
    return h.hexdigest()[:20]


def script_digest(script: str | Path, package_dir: str | Path) -> str:
    """Digest of a script and the package modules it imports (names and contents)."""
    files = [(Path(script).name, Path(script))] + [
        (name, Path(package_dir) / f"{name}.py") for name in imported_modules(script, package_dir)]
    h = hashlib.sha256()
    for name, path in files:
        h.update(f"{name}\0{_sha256(path)}\n".encode())
    return h.hexdigest()[:16]


def canonical(value: Any) -> Any:
    """`value` with every mapping's keys sorted (recursively), so equal configs compare equal."""
    if isinstance(value, dict):
        return {key: canonical(value[key]) for key in sorted(value, key=str)}
    if isinstance(value, (list, tuple)):
        return [canonical(item) for item in value]
    return value
