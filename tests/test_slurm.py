"""profiles/slurm on a real SLURM: a one-node cluster on localhost runs the tiny demo DAG.

The cluster (tests/slurm_cluster.py) is Debian's slurm-wlm with slurmdbd and MariaDB, installed
here when missing (root + apt-get; otherwise the test fails and says so). Its node advertises
2 CPUs, 4 GB and two stand-in GPUs (GRES backed by empty files), so the profile's GPU requests
(--gres=gpu:1) are scheduled and accounted exactly as on a real cluster, with no GPU needed.
"""

from __future__ import annotations

import importlib.util
from collections import Counter
from types import SimpleNamespace

import pytest
import yaml

from ganflow.config import validate
from slurm_cluster import Cluster, ClusterError, install
from test_feature_nets import stand_in
from workflow import REPO, jobs_planned, snakemake, tiny_config

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

CPUS, MEM_MB, GPUS = 2, 4000, 2
GPU_RULES = {"train", "rank", "metrics", "samples", "figures", "videos_walk", "project", "project_encoder", "edit_tagger",
             "edit_boundaries", "edit_video"}
RULE_THREADS = {"train": 8, **{rule: 4 for rule in GPU_RULES - {"train"}}}  # rules/*.smk
TRAIN_TASKS = 2


def fit_profile(profile: dict, cpus: int, mem_mb: int) -> dict:
    """The real profile shrunk to half the test node per job, so that two jobs run side by side.

    Everything else (executor, GPU requests, per-rule settings) stays as users get it; status
    checks come sooner and failures are not retried, so that a broken run fails fast.
    """
    threads, mem = max(1, cpus // 2), mem_mb // 2
    fitted = dict(profile, retries=0, **{"slurm-init-seconds-before-status-checks": 1,
                                         "seconds-between-status-checks": 1})
    fitted["max-threads"] = threads
    fitted["default-resources"] = dict(profile["default-resources"], mem_mb=mem)
    fitted["set-resources"] = {rule: dict(res, mem_mb=min(res.get("mem_mb", mem), mem))
                               for rule, res in profile["set-resources"].items()}
    return fitted


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    if importlib.util.find_spec("snakemake_executor_plugin_slurm") is None:
        pytest.fail("snakemake-executor-plugin-slurm is not installed: pip install -e '.[test,slurm]'")
    try:
        install()
    except ClusterError as err:
        pytest.fail(f"cannot set up the test SLURM cluster: {err}")
    with Cluster(tmp_path_factory.mktemp("slurm"), cpus=CPUS, mem_mb=MEM_MB, gpus=GPUS) as running:
        with pytest.MonkeyPatch.context() as env:
            for name in ("SLURM_CONF", "PATH"):  # for sbatch, sacct and srun, from snakemake and here
                env.setenv(name, running.env[name])
            yield running


# Every rule the profile sizes: one training round and its ranking, one figure and one walk
# video, the tag edits' video and a projection (the report pages, the other figures and
# videos and a second round are jobs like these; tests/test_pipeline.py runs them all).
TARGETS = [f"results/demo/{t}" for t in (
    "round-1/rank.tsv", "round-1/metrics.json", "report/funnel.tsv", "samples/grid.png", "figures/truncation.png",
    "videos/interpolation-grid.mp4", "videos/training-progress.mp4", "edits/tags.mp4", "project/dataset-0/w.npz")]


@pytest.fixture(scope="module")
def slurm_run(cluster, tmp_path_factory, cascade_path):
    """The tiny chain's TARGETS through profiles/slurm, and sacct's row for each job."""
    wd = tmp_path_factory.mktemp("dag")
    # Training as two tasks of one job (as on two GPUs; tf.distribute over CPUs here); the
    # node's stand-in GPUs are no GPUs to TensorFlow, so no job may insist on seeing one.
    (wd / "inception.pb").write_bytes(stand_in())  # the metrics rule's graph, a stand-in
    config = yaml.safe_load(tiny_config(wd, cascade_path, rounds=1, **{
        "samples.seeds": "0-3", "train.tasks_per_node": TRAIN_TASKS, "train.require_gpu": False,
        "metrics.inception": str(wd / "inception.pb"), "metrics.images": 8}).read_text())
    profile = fit_profile(yaml.safe_load((REPO / "profiles/slurm/config.yaml").read_text()), CPUS, MEM_MB)
    (wd / "profile").mkdir()
    (wd / "profile/config.yaml").write_text(yaml.safe_dump(profile))
    planned = jobs_planned(wd, *TARGETS)
    every_rule = set(jobs_planned(wd)) | set(planned)  # (one round: `all` ranks none)
    snakemake(wd, "--profile", str(wd / "profile"), *TARGETS)
    out = cluster.run("sacct", "--allusers", "--allocations", "--parsable2", "--noheader",
                      "--format=Comment,State,ReqCPUS,ReqMem,AllocTRES,JobID")
    jobs = [dict(zip(("comment", "state", "cpus", "mem", "tres", "jobid"), line.split("|")))
            for line in out.splitlines()]
    for job in jobs:  # the plugin's comment: rule_<rule>[_wildcards_<values>]
        job["rule"] = job["comment"].removeprefix("rule_").split("_wildcards_")[0]
    return SimpleNamespace(wd=wd, config=config, profile=profile, every_rule=every_rule, planned=planned, jobs=jobs)


def test_every_job_went_through_sbatch(slurm_run):
    submitted = slurm_run.planned
    assert submitted.keys() >= GPU_RULES | slurm_run.profile["set-resources"].keys() | {"ids", "clean"}
    assert Counter(job["rule"] for job in slurm_run.jobs) == submitted
    assert {job["state"] for job in slurm_run.jobs} == {"COMPLETED"}
    results = slurm_run.wd / "results/demo"
    assert (results / "samples/grid.png").stat().st_size > 0
    assert (results / "videos/interpolation-grid.mp4").stat().st_size > 0


def test_jobs_got_the_profiles_resources(slurm_run):
    config = validate(slurm_run.config, REPO / "config" / "schema.yaml")  # with the schema's defaults
    profile, images_threads = slurm_run.profile, config["images"]["threads"]
    assert profile["set-resources"].keys() <= slurm_run.every_rule  # no stale names
    for job in slurm_run.jobs:
        rule = job["rule"]
        mem_mb = profile["set-resources"].get(rule, {}).get("mem_mb", profile["default-resources"]["mem_mb"])
        assert job["mem"] == f"{mem_mb}M", rule
        assert ("gres/gpu=1" in job["tres"]) == (rule in GPU_RULES), (rule, job["tres"])
        threads = RULE_THREADS.get(rule, images_threads if rule == "images" else 1)
        tasks = TRAIN_TASKS if rule == "train" else 1
        assert int(job["cpus"]) == min(threads, profile["max-threads"]) * tasks, rule


def test_nothing_left_to_do(slurm_run):
    planned = jobs_planned(slurm_run.wd, *TARGETS)
    assert planned == {}, snakemake(slurm_run.wd, *TARGETS, "--dry-run").stdout[-3000:]


def test_training_ran_as_tasks_of_one_job(slurm_run, cluster):
    """The train job started its workers with srun: one step of TRAIN_TASKS tasks, each a
    tf.distribute worker (the chief wrote, the other said it writes nothing)."""
    (train,) = [job for job in slurm_run.jobs if job["rule"] == "train"]
    out = cluster.run("sacct", "--allusers", "--parsable2", "--noheader", "-j", train["jobid"],
                      "--format=JobID,NTasks,State")
    steps = [dict(zip(("id", "tasks", "state"), line.split("|"))) for line in out.splitlines()]
    workers = [s for s in steps if "." in s["id"] and s["id"].split(".")[-1].isdigit()]  # srun steps
    assert [(s["tasks"], s["state"]) for s in workers] == [(str(TRAIN_TASKS), "COMPLETED")], steps
    log = (slurm_run.wd / "logs/demo/round-1/train.log").read_text()
    assert f"starting {TRAIN_TASKS} training workers: srun --ntasks {TRAIN_TASKS}" in log
    for task in range(TRAIN_TASKS):
        assert f"{task}: " in log and f"{TRAIN_TASKS} replica(s)" in log
    assert log.count("this worker writes no files (the chief does)") == TRAIN_TASKS - 1
