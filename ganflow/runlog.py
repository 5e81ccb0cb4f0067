"""Logging for workflow jobs: to the rule's log file and the console, with broken-setup
errors shown as their one sentence instead of a traceback."""

from __future__ import annotations

import contextlib
import errno
import logging
import sys
from pathlib import Path
from typing import Any, Iterator

from tqdm import tqdm


class SetupError(RuntimeError):
    """A broken setup (missing file, bad config, unusable dependency): the message is the one
    sentence to show (which file, what is wrong, what to do)."""


class progress(tqdm):
    """tqdm on a terminal; elsewhere (rule logs, cluster job output) a plain line at most every
    `mininterval` seconds instead of carriage-return redraws that flood the file."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        file = kwargs.get("file") or sys.stderr
        self._plain = not (hasattr(file, "isatty") and file.isatty())
        self._shown: float | None = None  # the count last written as a line
        self._lines = _NoRedraw(file)
        if self._plain:
            kwargs.update(ascii=True, mininterval=kwargs.get("mininterval", 30.0), file=self._lines)
            kwargs.pop("dynamic_ncols", None)
        super().__init__(*args, **kwargs)

    def display(self, msg: str | None = None, pos: int | None = None) -> bool:
        if not self._plain:
            return super().display(msg, pos)
        if msg is None and self.n != self._shown:
            self._shown = self.n
            self._lines.line(self.__str__())
        return True

    def close(self) -> None:
        if self._plain and not self.disable:
            self.display()  # the final count, also for bars that leave=False would clear
        super().close()


_JOBS: list[str] = []  # the logs of the logged() jobs under way in this process


class _NoRedraw:
    """A stream that takes whole lines only: tqdm's own carriage returns and clears go nowhere.
    Inside a job (logged()) each line is a log record, so the rule's log shows the progress."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream

    def line(self, text: str) -> None:
        if _JOBS and self.stream is sys.stderr:
            logging.getLogger("ganflow.progress").info("%s", text.strip())
            return
        self.stream.write(text.strip() + "\n")
        self.stream.flush()

    def write(self, text: str) -> None:
        pass

    def flush(self) -> None:
        self.stream.flush()


@contextlib.contextmanager
def logged(log_file: str | Path | None) -> Iterator[logging.Logger]:
    """Send library logging to `log_file` and stderr for the duration of one job."""
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_file:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_file, mode="w", encoding="utf-8"))
    # TensorFlow's own INFO lines (absl: "Sharding callback duration" per tf.data step) would
    # be most of a training log; its warnings and errors stay.
    logging.getLogger("absl").setLevel(logging.WARNING)
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S")
    for h in handlers:
        h.setFormatter(fmt)
        root.addHandler(h)
    log = logging.getLogger("ganflow")
    _JOBS.append(str(log_file))
    try:
        yield log
    except SetupError as exc:
        log.error("%s", exc)
        sys.exit(f"ERROR: {exc}")
    except Exception as exc:
        if not _disk_full(exc):  # anything else: the rule's log must still say why
            log.exception("failed: %s", exc)
            raise
        where = getattr(exc, "filename", None) or "an output"
        message = (f"the disk is full: no space left to write {where}; free space there and run the same "
                   "command again (nothing half-written was kept)")
        log.error("%s", message)
        sys.exit(f"ERROR: {message}")
    finally:
        _JOBS.pop()
        for h in handlers:
            root.removeHandler(h)
            h.close()


def _disk_full(exc: BaseException) -> bool:
    """A full disk, however it surfaced: Python's OSError, or TensorFlow's own errors
    (a checkpoint or TFRecord write), which carry only the message."""
    return (isinstance(exc, OSError) and exc.errno == errno.ENOSPC) or "No space left on device" in str(exc)
