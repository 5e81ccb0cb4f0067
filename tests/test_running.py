"""A lock left by a killed run is told apart from a run still alive (ganflow/running.py)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys

from ganflow import running
from workflow import snakemake, tiny_config


def _locked(workdir, pid, host=None):
    (workdir / running.LOCKS).mkdir(parents=True)
    (workdir / running.LOCKS / "0.output.lock").write_text("results/demo/ids/0000.tsv\n")
    record = {"pid": pid, "host": host or socket.gethostname(), "started": "2026-01-01 00:00:00",
              "command": "snakemake --cores 2"}
    (workdir / running.RECORD).write_text(json.dumps(record))


def _gone_pid():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_no_lock_no_advice(tmp_path):
    assert running.lock_advice(tmp_path, unlocking=False) == ("", False)
    (tmp_path / running.LOCKS).mkdir(parents=True)
    assert running.lock_advice(tmp_path, unlocking=True) == ("", False)


def test_a_live_run_is_named_and_unlock_refused(tmp_path):
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]) as alive:
        _locked(tmp_path, alive.pid)
        text, stop = running.lock_advice(tmp_path, unlocking=False)
        assert not stop and f"still working in this directory (pid {alive.pid} on" in text
        assert f"kill {alive.pid}" in text and "never --unlock" in text
        text, stop = running.lock_advice(tmp_path, unlocking=True)
        assert stop and text.startswith("ganflow: refusing --unlock")
        alive.kill()


def test_a_dead_run_gets_the_unlock_advice(tmp_path):
    pid = _gone_pid()
    _locked(tmp_path, pid)
    text, stop = running.lock_advice(tmp_path, unlocking=True)
    assert not stop and f"left by a run that no longer runs (pid {pid}" in text and "snakemake --unlock" in text


def test_another_host_or_no_record(tmp_path):
    _locked(tmp_path, 1, host="login-node-7")
    text, stop = running.lock_advice(tmp_path, unlocking=True)
    assert not stop and "another machine" in text and "login-node-7" in text and "ps -p 1" in text
    (tmp_path / running.RECORD).write_text("{not json")
    text, _ = running.lock_advice(tmp_path, unlocking=False)
    assert "no record of the run" in text


def test_release_removes_only_its_own_record(tmp_path):
    running.record(tmp_path, ["snakemake", "--cores", "2"])
    assert json.loads((tmp_path / running.RECORD).read_text())["command"] == "snakemake --cores 2"
    running.release(tmp_path)
    assert not (tmp_path / running.RECORD).exists()
    _locked(tmp_path, _gone_pid())
    running.release(tmp_path)
    assert (tmp_path / running.RECORD).exists()


def test_the_workflow_refuses_unlock_under_a_live_run(tmp_path, cascade_path):
    tiny_config(tmp_path, cascade_path)
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]) as alive:
        _locked(tmp_path, alive.pid)
        proc = snakemake(tmp_path, "--unlock", check=False)
        assert proc.returncode != 0 and f"refusing --unlock: the run that holds the lock is still working (pid " \
            f"{alive.pid}" in proc.stdout + proc.stderr
        assert (tmp_path / running.LOCKS / "0.output.lock").exists()
        alive.kill()
    assert snakemake(tmp_path, "--unlock").returncode == 0  # gone: the documented unlock works
    assert not (tmp_path / running.LOCKS / "0.output.lock").exists()
