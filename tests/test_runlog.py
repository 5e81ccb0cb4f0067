"""Job logging: progress bars stay readable in log files (no carriage-return floods), and the
log of a failed job always says why."""

from __future__ import annotations

import errno
import logging
import io

import pytest

from ganflow.runlog import SetupError, logged, progress


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


def test_a_failed_job_log_always_says_why(tmp_path):
    log_file = tmp_path / "job.log"
    with pytest.raises(KeyError):
        with logged(log_file):
            {}["missing_column"]
    text = log_file.read_text()
    assert "failed: 'missing_column'" in text and "Traceback" in text and "KeyError" in text


def test_a_full_disk_is_one_sentence(tmp_path):
    log_file = tmp_path / "job.log"
    with pytest.raises(SystemExit) as stop:
        with logged(log_file):
            raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "out.tsv"))
    assert "disk is full" in str(stop.value) and "out.tsv" in str(stop.value)
    assert "disk is full" in log_file.read_text() and "Traceback" not in log_file.read_text()


def test_setup_errors_stay_one_sentence(tmp_path):
    log_file = tmp_path / "job.log"
    with pytest.raises(SystemExit, match="ERROR: config key x is wrong"):
        with logged(log_file):
            raise SetupError("config key x is wrong")
    assert "Traceback" not in log_file.read_text()


def test_a_full_disk_under_tensorflow_is_one_sentence(tmp_path):
    """TensorFlow's writers (TFRecords, checkpoints) raise their own errors, not OSError:
    /dev/full fails every write with ENOSPC, as a full disk does."""
    import tensorflow as tf

    log_file = tmp_path / "job.log"
    with pytest.raises(SystemExit) as stop:
        with logged(log_file):
            with tf.io.TFRecordWriter("/dev/full") as writer:
                for _ in range(100):
                    writer.write(b"x" * 100_000)
                writer.flush()
    assert str(stop.value).startswith("ERROR: the disk is full: no space left to write an output; free space")
    assert "Traceback" not in log_file.read_text() and "ResourceExhaustedError" not in log_file.read_text()


def test_a_job_log_has_the_progress_lines_and_not_tensorflows_info(tmp_path):
    log_file = tmp_path / "job.log"
    with logged(log_file):
        for _ in progress(range(5), desc="pack", mininterval=3600):
            pass
        logging.getLogger("absl").info("Sharding callback duration: 61 microseconds")
        logging.getLogger("absl").warning("a TensorFlow warning stays")
    text = log_file.read_text()
    assert "INFO ganflow.progress: pack: 100%|" in text and "5/5" in text
    assert "Sharding callback" not in text and "a TensorFlow warning stays" in text
