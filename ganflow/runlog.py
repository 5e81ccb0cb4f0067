"""Logging for workflow jobs: to the rule's log file and the console, with broken-setup
errors shown as their one sentence instead of a traceback."""

from __future__ import annotations

import contextlib
import logging
import sys
from pathlib import Path
from typing import Iterator


class SetupError(RuntimeError):
    """A broken setup (missing file, bad config, unusable dependency): the message is the one
    sentence to show (which file, what is wrong, what to do)."""


@contextlib.contextmanager
def logged(log_file: str | Path | None) -> Iterator[logging.Logger]:
    """Send library logging to `log_file` and stderr for the duration of one job."""
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_file:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_file, mode="w", encoding="utf-8"))
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S")
    for h in handlers:
        h.setFormatter(fmt)
        root.addHandler(h)
    try:
        yield logging.getLogger("ganflow")
    except SetupError as exc:
        logging.getLogger("ganflow").error("%s", exc)
        sys.exit(f"ERROR: {exc}")
    finally:
        for h in handlers:
            root.removeHandler(h)
            h.close()
