"""The rules' conda environments pin exactly what pyproject.toml pins, the GPU rules get the
CUDA one, and `pip install ".[gpu]"` really resolves to the CUDA build of TensorFlow."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib

import pytest
import yaml

from workflow import REPO

PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
EXTRAS = PROJECT["optional-dependencies"]


def name(requirement: str) -> str:
    """A requirement's project name, normalized (tensorflow_cpu and tensorflow-cpu are one)."""
    return re.sub(r"[-_.]+", "-", re.match(r"[A-Za-z0-9_.-]+", requirement)[0]).lower()


def env_pins(path: str) -> tuple[set[str], list]:
    env = yaml.safe_load((REPO / path).read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    return set(pip), env["dependencies"]


def test_conda_env_equals_pyproject_pins():
    pins, dependencies = env_pins("envs/ganflow.yaml")
    assert pins == set(PROJECT["dependencies"]) | set(EXTRAS["slurm"])
    python = next(d for d in dependencies if isinstance(d, str) and d.startswith("python="))
    assert PROJECT["requires-python"] == ">=3.10,<3.13" and python == "python=3.11"


def test_gpu_conda_env_is_the_cpu_one_with_cuda_tensorflow():
    # The base TensorFlow lines go: pip would otherwise put tensorflow-cpu beside the CUDA build.
    base = {d for d in PROJECT["dependencies"] if name(d) not in ("tensorflow", "tensorflow-cpu")}
    assert len(base) == len(PROJECT["dependencies"]) - 2
    pins, dependencies = env_pins("envs/ganflow-gpu.yaml")
    assert pins == base | set(EXTRAS["gpu"]) | set(EXTRAS["slurm"])
    assert EXTRAS["gpu"] == ["tensorflow[and-cuda]==2.21.*; sys_platform == 'linux' and platform_machine == 'x86_64'"]
    assert "python=3.11" in dependencies


def rule_envs() -> dict[str, str]:
    """Each rule (or checkpoint) in rules/*.smk -> the name after its `conda:`."""
    envs = {}
    for path in sorted((REPO / "rules").glob("*.smk")):
        text = path.read_text()
        heads = list(re.finditer(r"^ *(?:rule|checkpoint) (\w+):", text, re.M))
        for head, after in zip(heads, heads[1:] + [None]):
            block = text[head.end():after.start() if after else len(text)]
            conda = re.search(r"^ *conda:\n *(\w+)\n", block, re.M)
            envs[head[1]] = conda[1] if conda else None
    return envs


def test_gpu_rules_use_the_gpu_env():
    # A rule the SLURM profile sends to a GPU node is useless there with CPU-only TensorFlow.
    resources = yaml.safe_load((REPO / "profiles/slurm/config.yaml").read_text())["set-resources"]
    gpu = {rule for rule, res in resources.items() if "gres" in res}
    envs = rule_envs()
    assert len(envs) > 30 and gpu and gpu <= set(envs)
    assert {rule for rule, env in envs.items() if env == "CONDA_GPU_ENV"} == gpu
    assert {rule for rule, env in envs.items() if env == "CONDA_ENV"} == set(envs) - gpu
    common = (REPO / "rules/common.smk").read_text()
    assert 'CONDA_ENV = "../envs/ganflow.yaml"' in common
    assert 'CONDA_GPU_ENV = "../envs/ganflow-gpu.yaml"' in common


@pytest.mark.slow
def test_pip_resolves_one_tensorflow_build(tmp_path):
    # Both wheels own tensorflow/: exactly one may be installed, the CUDA libraries only with gpu.
    # A dry run reads metadata only (PyPI serves it apart from the wheels): 15-45 s, both at once.
    runs = {}
    for extras in ("gpu", "test,slurm"):
        report = tmp_path / f"{extras}.json"
        runs[extras] = report, subprocess.Popen(
            [sys.executable, "-m", "pip", "install", "--dry-run", "--quiet", "--report", str(report),
             "--ignore-installed", f".[{extras}]"], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for extras, (report, proc) in runs.items():
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-3000:]
        install = {name(item["metadata"]["name"]): item["metadata"]["version"]
                   for item in json.loads(report.read_text())["install"]}
        assert install["tensorflow"].startswith("2.21.") and "tensorflow-cpu" not in install
        cuda = {n for n in install if n.startswith(("nvidia-cudnn-", "nvidia-cuda-"))}
        assert bool(cuda) == (extras == "gpu"), (extras, sorted(cuda))
