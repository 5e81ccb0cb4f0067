"""Training throughput on this machine: sec/kimg and images/s for the demo model, a 64px
and a 256px config, each with and without XLA and with bfloat16 convolutions; plus the
two ways of implementing a modulated convolution (the reason networks.ModulatedConv
scales activations).

    .venv/bin/python benchmarks/bench_train.py            # everything (several minutes)
    .venv/bin/python benchmarks/bench_train.py demo 64px  # some configs only
    .venv/bin/python benchmarks/bench_train.py modconv

Times are medians of repeated steps after a warm-up that includes tracing (and XLA
compilation); one iteration is one D step, one G step and 1/r1_interval of the extra
cost of an R1 step, i.e. what training pays per batch on average.
"""

from __future__ import annotations

import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from ganflow.train_config import TrainConfig  # noqa: E402
from ganflow.trainer import Trainer  # noqa: E402

# The demo config the workflow ships for CPU: 32px, narrow, trains in minutes.
CONFIGS = {
    "demo": dict(resolution=32, z_dim=128, w_dim=128, mapping_layers=4, channel_base=2048, channel_max=128,
                 batch_size=16, mbstd_group=4),
    "64px": dict(resolution=64, channel_base=16384, channel_max=256, batch_size=16, mbstd_group=4),
    "256px": dict(resolution=256, channel_base=16384, channel_max=512, batch_size=4, mbstd_group=4),
}
STEPS = {"demo": 10, "64px": 5, "256px": 3}


def _median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def bench_config(name: str, xla: bool, augment: bool = True, conv_dtype: str = "float32") -> dict:
    cfg = TrainConfig.from_dict({**CONFIGS[name], "xla": xla, "augment": augment, "augment_p": 0.2,
                                 "conv_dtype": conv_dtype})
    trainer = Trainer(cfg)
    reals = tf.random.uniform([trainer.batch, cfg.resolution, cfg.resolution, 3], -1, 1)
    d_r1 = lambda: trainer._d_step[True](reals)["loss_d"].numpy()  # noqa: E731
    d = lambda: trainer._d_step[False](reals)["loss_d"].numpy()  # noqa: E731
    g = lambda: trainer._g_step()["loss_g"].numpy()  # noqa: E731
    t0 = time.perf_counter()
    for fn in (d_r1, d, g):
        fn()
    setup = time.perf_counter() - t0
    steps = 1 if xla else STEPS[name]  # XLA on CPU is so slow that one timing is plenty
    t_d, t_g, t_r1 = _median_time(d, steps), _median_time(g, steps), _median_time(d_r1, max(1, steps // 3))
    per_iter = t_d + t_g + (t_r1 - t_d) / cfg.r1_interval
    params = sum(int(np.prod(v.shape)) for v in trainer.G.trainable_weights + trainer.D.trainable_weights)
    return {"config": name, "xla": xla, "augment": augment, "conv": conv_dtype, "batch": trainer.batch,
            "params_M": params / 1e6,
            "setup_s": setup, "d_ms": t_d * 1e3, "d_r1_ms": t_r1 * 1e3, "g_ms": t_g * 1e3,
            "sec_per_kimg": per_iter / trainer.batch * 1000, "images_per_s": trainer.batch / per_iter}


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
    wanted = argv or [*CONFIGS, "modconv"]
    print(f"TensorFlow {tf.__version__}, {os.cpu_count()} CPUs, GPUs: {len(tf.config.list_physical_devices('GPU'))}")
    rows = []
    for name in (w for w in wanted if w in CONFIGS):
        runs = [dict(xla=False), dict(xla=True), dict(xla=False, conv_dtype="bfloat16")]
        if name == "demo":
            runs.append(dict(xla=False, augment=False))
        for run in runs:
            rows.append(bench_config(name, **run))
            print(_table(rows[-1:]), flush=True)
    if rows:
        print("\nTraining throughput\n" + _table(rows))
    if "modconv" in wanted:
        print("\nModulated 3x3 conv, forward + backward\n" + _table(bench_modconv()))


if __name__ == "__main__":
    main(sys.argv[1:])
