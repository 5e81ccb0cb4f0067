"""Running the real workflow from tests: a tiny config in a scratch directory."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


TEST_CONFIG = REPO / ".test" / "config" / "config.yaml"


def tiny_config(workdir: Path, cascade: Path, **overrides) -> Path:
    """The test workflow's config (.test/config/config.yaml: few faces, two shards, 32px images,
    a 16px model) in `workdir`, with a copy of the cascade and `overrides` ("section.key": value)."""
    cfg = yaml.safe_load(TEST_CONFIG.read_text())
    local = workdir / "cascade.xml"  # a copy: a workflow bug must never touch ../shared
    shutil.copyfile(cascade, local)
    cfg["faces"]["cascade"] = str(local)
    for key, value in overrides.items():
        section, _, name = key.partition(".")
        if name:
            cfg.setdefault(section, {})[name] = value
        else:
            cfg[section] = value
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def snakemake(workdir: Path, *args: str, check: bool = True, timeout: float = 900) -> subprocess.CompletedProcess:
    """Run snakemake on the repo's Snakefile in `workdir` (the workflow profile applies)."""
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--configfile",
           str(workdir / "config.yaml"), "--directory", str(workdir), "--cores", "2", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}")
    return proc


def jobs_run(proc: subprocess.CompletedProcess) -> dict[str, int]:
    """Rule -> how many of its jobs a finished snakemake run executed (from its log)."""
    counts: dict[str, int] = {}
    for line in (proc.stdout + proc.stderr).splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] in ("rule", "checkpoint", "localrule", "localcheckpoint") \
                and parts[1].endswith(":"):
            counts[parts[1][:-1]] = counts.get(parts[1][:-1], 0) + 1
    return counts


def jobs_planned(workdir: Path, *args: str) -> dict[str, int]:
    """Rule -> job count of what a dry run would do (empty when up to date)."""
    out = snakemake(workdir, *args, "--dry-run", "--quiet", "rules").stdout
    counts: dict[str, int] = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit() and parts[0] not in ("job", "total"):
            counts[parts[0]] = int(parts[1])
    return counts
