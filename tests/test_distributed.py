"""Training across processes: tf.distribute's MultiWorkerMirroredStrategy, as a SLURM job
of several tasks runs it (one task per GPU, over nodes), here as two worker processes on
localhost (CPU, TF_CONFIG). The global batch is the batch: two workers end where one
process with the same batch ends, and only the chief writes the run's files."""

from __future__ import annotations

import csv
import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from ganflow import weights
from test_train import TINY8, blobs
from workflow import REPO

# A run of 3 steps of 8 images (a snapshot at its end), 2 micro-batches per step, ADA on:
# every phase, the path-length pass's batch mean and the augmentation's margins cross
# the workers.
CFG = dict(TINY8, accum_steps=2, augment=True, augment_p=0.5, tick_kimg=0.024, total_kimg=0.024, snapshot_ticks=1,
           swd_images=16, swd_patches=8)

WORKER = textwrap.dedent("""
    import json, sys
    import numpy as np, tensorflow as tf
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    from ganflow import train
    from ganflow.train_config import TrainConfig
    from ganflow.trainer import cluster_resolver, make_strategy
    strategy = make_strategy([], cluster_resolver())  # first, before any other op
    cfg = TrainConfig.from_dict(json.loads(sys.argv[1]))
    images = np.load(sys.argv[2])
    stream = lambda start: tf.data.Dataset.from_tensor_slices(images).repeat().skip(start)
    result = train.train(cfg, stream, "f" * 64, sys.argv[3], sys.argv[4], strategy=strategy)
    print(json.dumps({"replicas": strategy.num_replicas_in_sync, "kimg": result["kimg"]}))
""")


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _start(args: list[str], tf_config: dict | None) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG" and not k.startswith("SLURM_")}
    env.update(PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    if tf_config:
        env["TF_CONFIG"] = json.dumps(tf_config)
    return subprocess.Popen([sys.executable, "-c", WORKER, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)


def _finish(proc: subprocess.Popen) -> dict:
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-4000:]
    return json.loads(out.strip().splitlines()[-1])


def _weights(out_dir: Path) -> dict[str, np.ndarray]:
    G, D, _ = weights.load_export(out_dir)
    return {**{f"G_ema/{w.path}": w.numpy() for w in G.weights}, **{f"D/{w.path}": w.numpy() for w in D.weights}}


@pytest.mark.slow
def test_two_workers_end_equal_to_one_process_with_the_same_global_batch(tmp_path: Path) -> None:
    """Two workers train 3 steps, then (as a failed job's rerun would, or a longer
    schedule) resume from the chief's snapshot for one more; one process trains all 4."""
    np.save(tmp_path / "images.npy", blobs(24, res=8))
    images, longer = str(tmp_path / "images.npy"), json.dumps(dict(CFG, total_kimg=0.032))
    cluster = {"worker": [f"127.0.0.1:{p}" for p in _free_ports(2)]}
    shared, single = tmp_path / "two", tmp_path / "one"

    def two_workers(cfg: str) -> list[dict]:
        return [_start([cfg, images, str(shared / "run"), str(shared / "out")],
                       {"cluster": cluster, "task": {"type": "worker", "index": i}}) for i in range(2)]

    one = _start([longer, images, str(single / "run"), str(single / "out")], None)
    results = [_finish(p) for p in two_workers(json.dumps(CFG))]
    assert [r["replicas"] for r in results] == [2, 2] and {r["kimg"] for r in results} == {0.024}
    # Only the chief wrote: one snapshot, one export, no worker's partial files.
    assert [p.name for p in (shared / "run/snapshots").iterdir()] == ["snapshot-000000000024"]
    results = [_finish(p) for p in two_workers(longer)]
    assert {r["kimg"] for r in results} == {0.032} and _finish(one) == {"replicas": 1, "kimg": 0.032}
    assert sorted(p.name for p in (shared / "out").iterdir()) == sorted(p.name for p in (single / "out").iterdir())
    two_w, one_w = _weights(shared / "out"), _weights(single / "out")
    start = _weights_at_start(tmp_path)
    moved = max(float(np.abs(one_w[k] - start[k]).max()) for k in one_w if k.startswith("D/"))
    diff = max(float(np.abs(two_w[k] - one_w[k]).max()) for k in one_w)
    # Adam makes steps of about lr, so round-off on near-zero gradients is amplified; the
    # weights agree to a few percent of what they moved (a wrong split: about all of it).
    assert moved > 1e-3 and diff < 0.05 * moved, (diff, moved)
    print(f"two workers vs one process: largest weight difference {diff:.2e}, largest step {moved:.2e}")
    two_log, one_log = (list(csv.DictReader(open(d / "out/log.csv"))) for d in (shared, single))
    assert len(two_log) == len(one_log) == 3  # the frame before the first step, and two ticks
    for a, b in zip(two_log, one_log):
        for column in ("kimg", "tick", "step", "augment_p", "frame"):
            assert a[column] == b[column]
        for column in ("loss_g", "loss_d", "r1", "pl", "d_real", "d_fake", "swd"):
            assert (a[column] == b[column] == "") or abs(float(a[column]) - float(b[column])) < 1e-3, column


def _weights_at_start(tmp_path: Path) -> dict[str, np.ndarray]:
    """The networks a run with this config starts from (the seed fixes them)."""
    from ganflow.train_config import TrainConfig
    from ganflow.trainer import Trainer

    t = Trainer(TrainConfig.from_dict(CFG))
    return {**{f"G_ema/{w.path}": w.numpy() for w in t.G_ema.weights}, **{f"D/{w.path}": w.numpy() for w in t.D.weights}}


def test_slurm_steps_resolve_to_one_worker_per_task(monkeypatch) -> None:
    """What SlurmClusterResolver makes of a job step: 2 nodes x 2 tasks with 2 GPUs each
    get one GPU per task; tasks without GPUs (this CPU, the SLURM test) get none assigned."""
    import importlib

    import tensorflow as tf
    from ganflow.trainer import cluster_resolver

    slurm = importlib.import_module("tensorflow.python.distribute.cluster_resolver.slurm_cluster_resolver")
    monkeypatch.setattr(slurm, "expand_hostlist", lambda nodes: ["n1", "n2"])  # scontrol's work
    step = {"SLURM_STEP_NUM_TASKS": "4", "SLURM_STEP_NODELIST": "n[1-2]", "SLURM_STEP_TASKS_PER_NODE": "2(x2)",
            "SLURM_JOB_ID": "20123"}
    assert cluster_resolver({}) is None and cluster_resolver({"SLURM_STEP_NUM_TASKS": "1"}) is None
    for name, value in {**step, "SLURM_PROCID": "3", "SLURM_GPUS_ON_NODE": "2"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    resolver = cluster_resolver(dict(os.environ))
    assert resolver.cluster_spec().as_dict() == {"worker": ["n1:20123", "n1:20124", "n2:20123", "n2:20124"]}
    assert (resolver.task_type, resolver.task_id) == ("worker", 3)
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "1"  # the second task on its node takes the second GPU
    monkeypatch.setenv("SLURM_GPUS_ON_NODE", "0")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    resolver = cluster_resolver(dict(os.environ))
    assert len(resolver.cluster_spec().as_dict()["worker"]) == 4 and os.environ["CUDA_VISIBLE_DEVICES"] == ""
    assert isinstance(cluster_resolver({"TF_CONFIG": json.dumps({"cluster": {"worker": ["a:1", "b:2"]},
                                                                 "task": {"type": "worker", "index": 0}})}),
                      tf.distribute.cluster_resolver.TFConfigClusterResolver)
