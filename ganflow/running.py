"""Who runs the workflow in a directory, so that a lock left behind can be told apart from a
run that is still alive.

Snakemake's "Directory cannot be locked" advises `--unlock` in both cases; unlocking under a
live run lets a second one write the same files. The Snakefile records the running process
(pid, host, start, command) once it holds the lock and removes the record when it ends; a
later run that finds the lock reads the record and says which case it is.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

RECORD = ".snakemake/ganflow-run.json"
LOCKS = ".snakemake/locks"


def record(workdir: str | Path, command: list[str]) -> None:
    """Note this process as the one running the workflow in `workdir`."""
    path = Path(workdir) / RECORD
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                               "started": time.strftime("%Y-%m-%d %H:%M:%S"), "command": " ".join(command)}))
    tmp.replace(path)


def release(workdir: str | Path) -> None:
    """Remove this process's record (a record of another process stays)."""
    path = Path(workdir) / RECORD
    owner = _read(path)
    if owner is not None and owner.get("pid") == os.getpid() and owner.get("host") == socket.gethostname():
        path.unlink(missing_ok=True)


def _read(path: Path) -> dict | None:
    try:
        owner = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return owner if isinstance(owner, dict) and isinstance(owner.get("pid"), int) else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def lock_advice(workdir: str | Path, unlocking: bool) -> tuple[str, bool]:
    """(what to tell the user, whether to stop) when `workdir` holds Snakemake locks: a live
    run on this host is named and `--unlock` refused; a run on another host is named with
    how to check it there; a dead one (or none recorded) gets the unlock advice. ("", False)
    without locks."""
    workdir = Path(workdir)
    locks = workdir / LOCKS
    if not locks.is_dir() or not any(locks.iterdir()):
        return "", False
    owner = _read(workdir / RECORD)
    if owner is None:
        return ("ganflow: this directory holds a Snakemake lock and no record of the run that took it: "
                "if no snakemake runs here (check with `ps -ef | grep snakemake`), run `snakemake --unlock` "
                "with the same options, then your command again"), False
    who = f"pid {owner['pid']} on {owner.get('host', '?')}, started {owner.get('started', '?')}: " \
          f"{owner.get('command', '?')}"
    if owner.get("host") != socket.gethostname():
        return (f"ganflow: the lock here may belong to a run on another machine ({who}); check there with "
                f"`ps -p {owner['pid']}` before any --unlock"), False
    if _alive(owner["pid"]):
        if unlocking:
            return (f"ganflow: refusing --unlock: the run that holds the lock is still working ({who}); wait "
                    f"for it to end, or stop it with `kill {owner['pid']}`"), True
        return (f"ganflow: another run is still working in this directory ({who}); if Snakemake says the "
                f"directory cannot be locked, wait for it to end or stop it with `kill {owner['pid']}`, "
                "never --unlock under it"), False
    return (f"ganflow: the lock here was left by a run that no longer runs ({who}): run `snakemake --unlock` "
            "with the same options, then your command again (jobs it left unfinished rerun by themselves)"), False
