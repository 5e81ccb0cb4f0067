"""profiles/slurm on a real SLURM: a one-node cluster on localhost runs the tiny demo DAG.

The cluster (tests/slurm_cluster.py) is Debian's slurm-wlm with slurmdbd and MariaDB, installed
here when missing (root + apt-get; otherwise the test fails and says so). Its node advertises
2 CPUs, 4 GB and two GPUs as a bare GRES count, so the profile's GPU requests (--gres=gpu:1)
are scheduled and accounted exactly as on a real cluster, with no GPU needed.
"""

from __future__ import annotations

from collections import Counter

import pytest
import yaml

from slurm_cluster import Cluster, ClusterError, install
from conftest import TRAIN, VIDEOS
from workflow import REPO, jobs_planned, snakemake, tiny_config

pytestmark = pytest.mark.slurm

CPUS, MEM_MB, GPUS = 2, 4000, 2
GPU_RULES = {"train", "rank", "samples", "figure", "walk_video"}


def fit_profile(profile: dict, cpus: int, mem_mb: int) -> dict:
    """The real profile shrunk to the test node: no job asks for more CPUs or memory than it has.

    Everything else (executor, GPU requests, per-rule settings) stays as users get it; status
    checks come sooner and failures are not retried, so that a broken run fails fast.
    """
    per_job = mem_mb // cpus  # two one-CPU jobs fit side by side
    fitted = dict(profile, retries=0, **{"slurm-init-seconds-before-status-checks": 1})
    fitted["set-threads"] = {rule: min(n, cpus) for rule, n in profile["set-threads"].items()}
    fitted["default-resources"] = dict(profile["default-resources"], mem_mb=per_job)
    fitted["set-resources"] = {rule: dict(res, mem_mb=min(res.get("mem_mb", per_job), per_job))
                               for rule, res in profile["set-resources"].items()}
    return fitted


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    try:
        install()
    except ClusterError as err:
        pytest.fail(f"cannot set up the test SLURM cluster: {err}")
    with Cluster(tmp_path_factory.mktemp("slurm"), cpus=CPUS, mem_mb=MEM_MB, gpus=GPUS) as running:
        with pytest.MonkeyPatch.context() as env:
            for name in ("SLURM_CONF", "PATH"):  # for sbatch, sacct and srun, from snakemake and here
                env.setenv(name, running.env[name])
            yield running


@pytest.fixture(scope="module")
def slurm_run(cluster, tmp_path_factory, cascade_path):
    """The whole tiny chain (two rounds) through profiles/slurm; sacct's row for each job."""
    wd = tmp_path_factory.mktemp("dag")
    tiny_config(wd, cascade_path, rounds=2, train=TRAIN, videos=VIDEOS,
                **{"samples.seeds": "0-3", "tfrecords.shards": 2})
    profile = yaml.safe_load((REPO / "profiles/slurm/config.yaml").read_text())
    (wd / "profile").mkdir()
    (wd / "profile/config.yaml").write_text(yaml.safe_dump(fit_profile(profile, CPUS, MEM_MB)))
    planned = jobs_planned(wd)
    snakemake(wd, "--profile", str(wd / "profile"))
    out = cluster.run("sacct", "--allusers", "--allocations", "--parsable2", "--noheader",
                      "--format=Comment,State,ReqCPUS,ReqMem,AllocTRES")
    jobs = [dict(zip(("comment", "state", "cpus", "mem", "tres"), line.split("|")))
            for line in out.splitlines()]
    for job in jobs:  # the plugin's comment: rule_<rule>[_wildcards_<values>]
        job["rule"] = job["comment"].removeprefix("rule_").split("_wildcards_")[0]
    return wd, planned, jobs, fit_profile(profile, CPUS, MEM_MB)


def test_every_job_went_through_sbatch(slurm_run):
    wd, planned, jobs, _ = slurm_run
    submitted = {rule: n for rule, n in planned.items() if rule != "all"}  # the target runs locally
    assert len(submitted) > 10 and submitted.keys() >= GPU_RULES | {"faces", "images", "dataset"}
    assert Counter(job["rule"] for job in jobs) == submitted
    assert {job["state"] for job in jobs} == {"COMPLETED"}
    assert (wd / "results/demo/samples/grid.png").stat().st_size > 0
    assert (wd / "results/demo/videos/interpolation-grid.mp4").stat().st_size > 0


def test_jobs_got_the_profiles_resources(slurm_run):
    _, _, jobs, profile = slurm_run
    for job in jobs:
        rule = job["rule"]
        wants = profile["set-resources"].get(rule, {})
        assert job["mem"] == f"{wants.get('mem_mb', profile['default-resources']['mem_mb'])}M", rule
        assert ("gres/gpu=1" in job["tres"]) == (rule in GPU_RULES), (rule, job["tres"])
        if rule in profile["set-threads"]:
            assert int(job["cpus"]) == profile["set-threads"][rule], rule


def test_nothing_left_to_do(slurm_run):
    wd = slurm_run[0]
    assert jobs_planned(wd) == {}
