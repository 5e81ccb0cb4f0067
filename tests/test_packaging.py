"""The conda environment of the rules pins exactly what pyproject.toml pins."""

from __future__ import annotations

import tomllib

import yaml

from workflow import REPO


def test_conda_env_equals_pyproject_pins():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    pins = set(project["dependencies"]) | set(project["optional-dependencies"]["slurm"])
    env = yaml.safe_load((REPO / "envs/ganflow.yaml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert set(pip) == pins
    python = next(d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python="))
    assert project["requires-python"] == ">=3.10,<3.13" and python == "python=3.11"
