"""Job logging: progress bars stay readable in log files (no carriage-return floods)."""

from __future__ import annotations

import io

from ganflow.runlog import progress


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_in_a_log_file_writes_whole_lines_only():
    log = io.StringIO()
    for _ in progress(range(10_000), desc="pack", file=log, mininterval=3600):
        pass
    with progress(total=3, desc="faces", file=log, leave=False) as bar:
        bar.update(3)
    text = log.getvalue()
    assert "\r" not in text and "\x1b" not in text
    lines = text.splitlines()
    # the first and the last state of each bar, nothing in between within mininterval
    assert [line.split(":")[0] for line in lines] == ["pack", "pack", "faces", "faces"]
    assert "10000/10000" in lines[1] and "3/3" in lines[3]


def test_progress_on_a_terminal_redraws_in_place():
    tty = _Terminal()
    for _ in progress(range(100), desc="rank", file=tty, mininterval=0):
        pass
    assert "\r" in tty.getvalue()
