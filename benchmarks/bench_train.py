"""Training throughput on this machine: sec/kimg and images/s of the demo model and of 64px
and 128px configs, what each phase of an iteration costs (Gmain, Greg = path length,
Dmain, Dreg = R1), and so what path-length regularisation adds; optionally the same for
the trainer of another git revision (--before), and variants with XLA, bfloat16
convolutions or no augmentation; plus the two ways of implementing a modulated
convolution (the reason networks.ModulatedConv scales activations).

    .venv/bin/python benchmarks/bench_train.py                    # demo, 64px, 128px (a few minutes)
    .venv/bin/python benchmarks/bench_train.py demo 64px --before HEAD
    .venv/bin/python benchmarks/bench_train.py demo --variants     # + XLA, bfloat16, no augmentation
    .venv/bin/python benchmarks/bench_train.py modconv

sec/kimg is measured over 16 whole training iterations (4 with the path-length pass, 1
with R1: the long-run average) after two that trace everything (and compile, with XLA).
The per-phase columns are medians of a few calls of each phase's gradient computation
alone; "pl_share" is Greg / pl_interval over Gmain + Dmain + Greg / pl_interval +
Dreg / r1_interval, the part of training time path-length regularisation takes. --before
REV loads that revision's trainer.py, losses.py, augment.py and train_config.py (with this
tree's networks) and times it the same way (its dreg_ms: what R1 added to its D pass). On
a shared machine, run it when nothing else is: the numbers move with the load.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from ganflow.train_config import TrainConfig  # noqa: E402
from ganflow.trainer import Trainer  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
# The demo config the workflow ships for CPU (config/config.yaml), and narrow 64px and
# 128px models that time in minutes on a few CPU cores (every preset key given, so that
# --before's older TrainConfig builds the same networks).
CONFIGS = {
    "demo": dict(resolution=32, z_dim=64, w_dim=64, mapping_layers=2, channel_base=1024, channel_max=64,
                 batch_size=16, mbstd_group=4),
    "64px": dict(resolution=64, mapping_layers=8, channel_base=4096, channel_max=256, batch_size=8, mbstd_group=4),
    "128px": dict(resolution=128, mapping_layers=8, channel_base=4096, channel_max=256, batch_size=8,
                  mbstd_group=4),
    "256px": dict(resolution=256, mapping_layers=8, channel_base=16384, channel_max=512, batch_size=4,
                  mbstd_group=4),
}
STEPS = {"demo": 7, "64px": 5, "128px": 5, "256px": 2}


def _median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _reals(batch: int, resolution: int):
    images = tf.random.stateless_uniform([batch, resolution, resolution, 3], [0, 1], -1, 1)
    while True:
        yield images


def _iterations(train_step, iterations: int) -> float:
    """Seconds per iteration over `iterations` whole training iterations."""
    t0 = time.perf_counter()
    for _ in range(iterations):
        train_step()
    return (time.perf_counter() - t0) / iterations


def bench_config(name: str, xla: bool = False, augment: bool = True, conv_dtype: str = "float32",
                 steps: int | None = None) -> dict:
    cfg = TrainConfig.from_dict({**CONFIGS[name], "xla": xla, "augment": augment, "augment_p": 0.2,
                                 "ada_target": 0.0, "conv_dtype": conv_dtype})
    trainer = Trainer(cfg)
    batches = _reals(trainer.batch, cfg.resolution)
    reals = next(batches)
    seed = tf.constant([0, 1], tf.int64)
    t0 = time.perf_counter()
    trainer.train_step(batches)  # traces the steps with both regularisers
    trainer.train_step(batches)  # and without
    phases = {"gmain": lambda: trainer.phase_grads("Gmain", seed)[0][0].numpy(),
              "greg": lambda: trainer.phase_grads("Greg", seed)[0][0].numpy(),
              "dmain": lambda: trainer.phase_grads("Dmain", seed, reals)[0][0].numpy(),
              "dreg": lambda: trainer.phase_grads("Dreg", seed, reals)[0][0].numpy()}
    for fn in phases.values():
        fn()
    setup = time.perf_counter() - t0
    steps = 1 if xla else steps or STEPS[name]  # XLA on CPU is so slow that one timing is plenty
    t = {k: _median_time(fn, steps) for k, fn in phases.items()}
    # Whole iterations: 16 from g_steps = d_steps = 2 hold 4 Greg and 1 Dreg, the average.
    per_iter = _iterations(lambda: trainer.train_step(batches), 16)
    amortised = t["gmain"] + t["dmain"] + t["greg"] / cfg.pl_interval + t["dreg"] / cfg.r1_interval
    params = sum(int(np.prod(v.shape)) for v in trainer.G.trainable_weights + trainer.D.trainable_weights)
    return {"config": name, "code": "now", "xla": xla, "augment": augment, "conv": conv_dtype,
            "batch": trainer.batch, "params_M": params / 1e6, "setup_s": setup,
            **{f"{k}_ms": v * 1e3 for k, v in t.items()},
            "sec_per_kimg": per_iter / trainer.batch * 1000, "images_per_s": trainer.batch / per_iter,
            "pl_share": t["greg"] / cfg.pl_interval / amortised}


def load_before(rev: str) -> types.ModuleType:
    """The trainer of git revision `rev` (its trainer, losses, augment and train_config
    modules, importing this tree's networks), as a package of its own."""
    root = Path(tempfile.mkdtemp(prefix="bench-before-"))
    package = root / "ganflow_before"
    package.mkdir()
    (package / "__init__.py").write_text("")
    names = ("trainer", "losses", "augment", "train_config")
    for module in names:
        source = subprocess.run(["git", "show", f"{rev}:ganflow/{module}.py"], cwd=REPO, capture_output=True,
                                text=True, check=True).stdout
        source = source.replace("from ganflow import losses, networks, weights",
                                "from ganflow_before import losses\nfrom ganflow import networks, weights")
        for other in names:
            source = source.replace(f"from ganflow import {other}", f"from ganflow_before import {other}")
            source = source.replace(f"from ganflow.{other} import", f"from ganflow_before.{other} import")
        (package / f"{module}.py").write_text(source)
    sys.path.insert(0, str(root))
    spec = importlib.util.spec_from_file_location("ganflow_before", package / "__init__.py",
                                                  submodule_search_locations=[str(package)])
    pkg = importlib.util.module_from_spec(spec)
    sys.modules["ganflow_before"] = pkg
    return importlib.import_module("ganflow_before.trainer")


def bench_before(trainer_module: types.ModuleType, rev: str, name: str, steps: int | None = None) -> dict:
    """The same for an older trainer: its G step, D step and D step with R1 (one pass)."""
    train_config = sys.modules["ganflow_before.train_config"]
    known = {f for f in train_config.TrainConfig.__dataclass_fields__}
    settings = {**CONFIGS[name], "augment": True, "augment_p": 0.2, "ada_target": 0.0}
    cfg = train_config.TrainConfig.from_dict({k: v for k, v in settings.items() if k in known})
    trainer = trainer_module.Trainer(cfg)
    batches = _reals(trainer.batch, cfg.resolution)
    reals = next(batches)
    seed = tf.constant([0, 1], tf.int64)
    t0 = time.perf_counter()
    trainer.train_step(batches)
    trainer.train_step(batches)
    # Its compiled gradient functions, as its steps hold them.
    g_grads = trainer._g_step.python_function.args[0]
    d_grads = trainer._d_step[False].python_function.args[0]
    phases = {"gmain": lambda: g_grads(seed)[0][0].numpy(),
              "dmain": lambda: d_grads(reals, seed, 0, False)[0][0].numpy(),
              "dmain_r1": lambda: d_grads(reals, seed, 0, True)[0][0].numpy()}
    for fn in phases.values():
        fn()
    setup = time.perf_counter() - t0
    steps = steps or STEPS[name]
    t = {k: _median_time(fn, steps) for k, fn in phases.items()}
    per_iter = _iterations(lambda: trainer.train_step(batches), 16)
    params = sum(int(np.prod(v.shape)) for v in trainer.G.trainable_weights + trainer.D.trainable_weights)
    return {"config": name, "code": rev, "xla": False, "augment": True, "conv": "float32", "batch": trainer.batch,
            "params_M": params / 1e6, "setup_s": setup, "gmain_ms": t["gmain"] * 1e3, "greg_ms": 0.0,
            "dmain_ms": t["dmain"] * 1e3, "dreg_ms": (t["dmain_r1"] - t["dmain"]) * 1e3,
            "sec_per_kimg": per_iter / trainer.batch * 1000, "images_per_s": trainer.batch / per_iter,
            "pl_share": 0.0}


def _modconv_scaled(x, s, w, d):
    return tf.nn.conv2d(x * s[:, None, None, :], w, 1, "SAME") * d[:, None, None, :]


def _modconv_grouped(x, s, w, d):
    """Per-sample weights as one grouped convolution (the paper's fused formulation)."""
    n, h, width, c = x.shape
    o = w.shape[-1]
    ww = w[None] * s[:, None, None, :, None] * d[:, None, None, None, :]
    ww = tf.reshape(tf.transpose(ww, [1, 2, 3, 0, 4]), [3, 3, c, n * o])
    xx = tf.reshape(tf.transpose(x, [1, 2, 0, 3]), [1, h, width, n * c])
    y = tf.nn.conv2d(xx, ww, 1, "SAME")
    return tf.transpose(tf.reshape(y, [h, width, n, o]), [2, 0, 1, 3])


def bench_modconv() -> list[dict]:
    rows = []
    for n, res, ch in [(16, 16, 256), (8, 32, 128), (8, 64, 64), (4, 128, 32)]:
        x = tf.random.normal([n, res, res, ch])
        s, d = tf.random.normal([n, ch]), tf.random.normal([n, ch])
        w = tf.Variable(tf.random.normal([3, 3, ch, ch]))
        row = {"batch": n, "res": res, "channels": ch}
        for label, impl in (("scaled", _modconv_scaled), ("grouped", _modconv_grouped)):
            @tf.function
            def step():
                with tf.GradientTape() as tape:
                    tape.watch(x)
                    y = impl(x, s, w, d)
                    loss = tf.reduce_sum(y * y)
                return tape.gradient(loss, [x, w])
            step()
            row[f"{label}_ms"] = _median_time(lambda: [t.numpy() for t in step()], 10) * 1e3
        row["max_abs_diff"] = float(tf.reduce_max(tf.abs(_modconv_scaled(x, s, w, d) - _modconv_grouped(x, s, w, d))))
        rows.append(row)
    return rows


def _table(rows: list[dict]) -> str:
    keys = list(rows[0])
    fmt = lambda v: f"{v:.3g}" if isinstance(v, float) else str(v)  # noqa: E731
    widths = [max(len(k), *(len(fmt(r[k])) for r in rows)) for k in keys]
    lines = ["  ".join(k.rjust(w) for k, w in zip(keys, widths))]
    lines += ["  ".join(fmt(r[k]).rjust(w) for k, w in zip(keys, widths)) for r in rows]
    return "\n".join(lines)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", nargs="*", help=f"configs ({', '.join(CONFIGS)}) and/or modconv; "
                                                f"default: demo 64px 128px")
    parser.add_argument("--before", metavar="REV", help="also time the trainer of this git revision")
    parser.add_argument("--variants", action="store_true", help="also XLA, bfloat16 and (demo) no augmentation")
    parser.add_argument("--steps", type=int, help="timed calls per measurement (default: per config)")
    args = parser.parse_args(argv)
    wanted = args.what or ["demo", "64px", "128px"]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"TensorFlow {tf.__version__}, {os.cpu_count()} CPUs (load {load:.1f}), "
          f"GPUs: {len(tf.config.list_physical_devices('GPU'))}")
    before = load_before(args.before) if args.before else None
    rows = []
    for name in (w for w in wanted if w in CONFIGS):
        runs = [dict()]
        if args.variants:
            runs += [dict(xla=True), dict(conv_dtype="bfloat16")] + ([dict(augment=False)] if name == "demo" else [])
        if before is not None:
            rows.append(bench_before(before, args.before, name, args.steps))
            print(_table(rows[-1:]), flush=True)
        for run in runs:
            rows.append(bench_config(name, steps=args.steps, **run))
            print(_table(rows[-1:]), flush=True)
    if rows:
        print("\nTraining throughput\n" + _table(rows))
    if "modconv" in wanted:
        print("\nModulated 3x3 conv, forward + backward\n" + _table(bench_modconv()))


if __name__ == "__main__":
    main(sys.argv[1:])
