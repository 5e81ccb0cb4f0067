"""One command line: `ganflow <verb>`, each verb a module's own main with its --help."""

from __future__ import annotations

import subprocess
import sys

import pytest

from ganflow import cli


def test_ganflow_help_lists_every_verb(capsys):
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    for verb in ("import", "rank", "project", "edit", "explore", "render"):
        assert f"\n  {verb} " in out
    assert cli.main([]) == 2  # no verb: the same list, as a usage error
    assert cli.main(["train"]) == 2 and "unknown verb 'train'" in capsys.readouterr().err


@pytest.mark.parametrize("verb", ["import", "rank", "project", "edit", "explore"])
def test_each_verb_has_its_own_help_under_its_own_name(verb, capsys):
    with pytest.raises(SystemExit) as done:
        cli.main([verb, "--help"])
    assert done.value.code == 0 and capsys.readouterr().out.startswith(f"usage: ganflow {verb} ")


def test_render_is_explore_render(monkeypatch, capsys):
    seen = []
    monkeypatch.setattr("ganflow.explore.main", lambda argv, prog: seen.append((argv, prog)) or 0)
    assert cli.main(["render", "RUN", "a.png", "b.png", "c.json", "d.png"]) == 0
    assert seen == [(["RUN", "--render", "a.png", "b.png", "--render", "c.json", "d.png"], "ganflow render")]
    assert cli.main(["render", "RUN", "a.png"]) == 2 and "usage: ganflow render RUN SETTINGS" in capsys.readouterr().err


def test_the_console_script_is_ganflow_cli():
    """pyproject's [project.scripts] entry, as pip installs it into the venv."""
    done = subprocess.run([sys.executable, "-c", "from importlib.metadata import entry_points; "
                           "print(entry_points(group='console_scripts')['ganflow'].value)"],
                          capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "ganflow.cli:main"
