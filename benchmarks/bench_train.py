"""Training throughput on this machine: sec/kimg and images/s of the demo model (32px) and
of 64px, 128px and 256px configs, in float32 and bfloat16 convolutions (interleaved, so
that a shared machine's load falls on both alike); what each phase of an iteration costs
(Gmain, Greg = path length, Dmain, Dreg = R1), and so what path-length regularisation
adds; the FLOPs per trained image (both regularisers included, counted from the traced
graphs), the GFLOP/s achieved against this machine's float32 and bfloat16 matmul rates,
and the shares of the step's op time in dense ops (convolutions, matmuls), the blur and
element-wise ops. Optionally the same for the trainer of another git revision
(--before), variants with XLA or no augmentation, FLOPs alone (--flops-only, e.g. of the
512px paper512 model for benchmarks/README.md's GPU estimate); plus the two ways of
implementing a modulated convolution (the reason networks.ModulatedConv scales activations).

    .venv/bin/python benchmarks/bench_train.py                    # demo, 64px, 128px (some minutes)
    .venv/bin/python benchmarks/bench_train.py demo 64px --before HEAD
    .venv/bin/python benchmarks/bench_train.py demo --variants     # + XLA, no augmentation
    .venv/bin/python benchmarks/bench_train.py 512px --flops-only
    .venv/bin/python benchmarks/bench_train.py modconv
    ONEDNN_MAX_CPU_ISA=AVX2 .venv/bin/python benchmarks/bench_train.py demo 64px --float32-only  # as on AVX2

sec/kimg is measured over blocks of 16 whole training iterations (4 with the path-length
pass, 1 with R1: the long-run average), two per variant taken in turn (the median), after
two that trace everything (and compile, with XLA); at 256px and up it is the amortised
phases' (ITERATIONS).
The per-phase columns are medians of a few calls of each phase's gradient computation
alone; "pl_share" is Greg / pl_interval over Gmain + Dmain + Greg / pl_interval +
Dreg / r1_interval, the part of training time path-length regularisation takes; GFLOP/s
and the op shares are of that same amortised mix (the shares from one profiled call of
each phase; op times of the two executor threads added up). --before
REV loads that revision's trainer.py, losses.py, augment.py and train_config.py (with this
tree's networks) and times it the same way (its dreg_ms: what R1 added to its D pass). On
a shared machine, run it when nothing else is: the numbers move with the load.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import types
from functools import partial
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from ganflow.train_config import TrainConfig  # noqa: E402
from ganflow.trainer import PHASES, Trainer  # noqa: E402

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
    # upstream's paper512 networks (FLOPs per image do not depend on the batch)
    "512px": dict(resolution=512, mapping_layers=8, channel_base=32768, channel_max=512, batch_size=8,
                  mbstd_group=8),
}
STEPS = {"demo": 7, "64px": 5, "128px": 5, "256px": 2, "512px": 1}
# Whole iterations timed per variant (16 hold the long-run mix of 4 Greg and 1 Dreg);
# 0: sec/kimg from the amortised phases alone (256px takes minutes an iteration here).
ITERATIONS = {"demo": 16, "64px": 16, "128px": 16, "256px": 0, "512px": 0}
DENSE_OPS = ("Conv2D", "Conv2DBackpropInput", "Conv2DBackpropFilter", "MatMul", "BatchMatMulV2")
BLUR_OPS = ("DepthwiseConv2dNative", "DepthwiseConv2dNativeBackpropInput", "DepthwiseConv2dNativeBackpropFilter")
# A TensorFlow op in a profile: "name:Type" (oneDNN's kernels are _Mkl..., _MklNative...).
_OP_EVENT = re.compile(r"^[^\s:]+:(_?[A-Z]\w*)$")


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


def _op_flops(op: tf.Operation) -> float:
    """2 x the multiply-adds of a dense or depthwise op, from the graph's static shapes."""
    t = op.type
    if t in ("MatMul", "BatchMatMulV2"):
        a = op.inputs[0].shape
        transposed = op.get_attr("transpose_a" if t == "MatMul" else "adj_x")
        return 2.0 * op.outputs[0].shape.num_elements() * (a[-2] if transposed else a[-1])
    # The forward op's output (its gradient, for the backprops) x the filter's taps per output.
    out = op.outputs[0] if t in ("Conv2D", "DepthwiseConv2dNative") else op.inputs[2]
    kernel = op.outputs[0].shape if t.endswith("BackpropFilter") else op.inputs[1].shape
    return 2.0 * out.shape.num_elements() * kernel[0] * kernel[1] * (1 if "Depthwise" in t else kernel[2])


def graph_flops(graph: tf.Graph) -> dict[str, float]:
    """FLOPs of a traced phase: dense (convolutions, matmuls) and blur (depthwise)."""
    totals = {"dense": 0.0, "blur": 0.0}
    for op in graph.get_operations():
        if op.type in ("While", "StatelessWhile", "PartitionedCall", "StatefulPartitionedCall"):
            raise ValueError(f"{op.type} in a phase's graph: count FLOPs with accum_steps 1")
        kind = "dense" if op.type in DENSE_OPS else "blur" if op.type in BLUR_OPS else None
        if kind:
            totals[kind] += _op_flops(op)
    return totals


def _phase_args(trainer: Trainer, phase: str, reals: tf.Tensor) -> tuple:
    """What Trainer.phase_grads passes its compiled phase (no path-length first pass at accum 1)."""
    return tf.constant([0, 1], tf.int64), reals if phase[0] == "D" else None, tf.constant(0, tf.int32), None


def phase_weights(cfg: TrainConfig) -> dict[str, float]:
    """How often each phase runs per iteration in the long run."""
    return {"Gmain": 1.0, "Greg": 1.0 / cfg.pl_interval, "Dmain": 1.0, "Dreg": 1.0 / cfg.r1_interval}


def phase_flops(config: str | dict) -> dict[str, dict[str, float]]:
    """Dense and blur FLOPs per trained image of each phase's one run, of a config (a name
    of CONFIGS, or TrainConfig settings): each phase's graph traced, not run, over the batch
    of an iteration. Traced as under `xla`, whose augmentation pads by a fixed margin: every
    shape is then static (the blur count takes the augmentation's filters at that largest
    margin)."""
    settings = CONFIGS[config] if isinstance(config, str) else config
    trainer = Trainer(TrainConfig.from_dict({**settings, "augment_p": 0.2, "xla": True}))
    reals = tf.zeros([trainer.batch, trainer.cfg.resolution, trainer.cfg.resolution, 3])
    flops = {}
    for phase in PHASES:
        graph = trainer._grads[phase].get_concrete_function(*_phase_args(trainer, phase, reals)).graph
        flops[phase] = {kind: total / trainer.batch for kind, total in graph_flops(graph).items()}
    return flops


def flops_per_image(config: str | dict) -> dict[str, float]:
    """Dense and blur FLOPs per trained image of a config (phase_flops), each phase at its
    long-run frequency."""
    settings = CONFIGS[config] if isinstance(config, str) else config
    weights = phase_weights(TrainConfig.from_dict(settings))
    totals = {"dense": 0.0, "blur": 0.0}
    for phase, flops in phase_flops(settings).items():
        for kind, value in flops.items():
            totals[kind] += weights[phase] * value
    return totals


def matmul_rate(dtype: tf.DType, n: int = 2048, repeats: int = 8) -> float:
    """GFLOP/s of an n x n matmul in `dtype`, the best of a few: the dense ceiling here.
    One element comes back, so that on a GPU it times the product, not its copy to the host
    (there, take n of 8192 or so: a 2048 product takes microseconds)."""
    a, b = (tf.cast(tf.random.normal([n, n], seed=i), dtype) for i in (1, 2))
    matmul = tf.function(lambda a, b: tf.matmul(a, b)[0, 0])
    matmul(a, b).numpy()
    return 2.0 * n ** 3 / min(_median_time(lambda: matmul(a, b).numpy(), 1) for _ in range(repeats)) / 1e9


def op_shares(calls: dict[str, tuple]) -> dict[str, float]:
    """Shares of op time in dense ops, the blur and the rest (element-wise: bias,
    activations, casts, pads, reductions, noise, augmentation), from one profiled call of
    each phase weighted by its frequency: {phase: (fn, weight)}."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    totals = {"dense": 0.0, "blur": 0.0, "elementwise": 0.0}
    for phase, (fn, weight) in calls.items():
        with tempfile.TemporaryDirectory() as logdir:
            tf.profiler.experimental.start(logdir)
            fn()
            tf.profiler.experimental.stop()
            space = xplane_pb2.XSpace()
            space.ParseFromString(next(Path(logdir).rglob("*.xplane.pb")).read_bytes())
        for plane in (p for p in space.planes if p.name == "/host:CPU"):
            for line in plane.lines:
                for event in line.events:
                    match = _OP_EVENT.match(plane.event_metadata[event.metadata_id].name)
                    if match:
                        t = match.group(1)
                        kind = "blur" if "Depthwise" in t else "dense" if "Conv2D" in t or "MatMul" in t \
                            else "elementwise"
                        totals[kind] += weight * event.duration_ps
    total = sum(totals.values())
    return {f"{k}_share": v / total for k, v in totals.items()}


class _Variant:
    """One trainer under test, traced and warmed, its phases callable."""

    def __init__(self, name: str, xla: bool, augment: bool, conv_dtype: str) -> None:
        self.cfg = TrainConfig.from_dict({**CONFIGS[name], "xla": xla, "augment": augment, "augment_p": 0.2,
                                          "ada_target": 0.0, "conv_dtype": conv_dtype})
        self.trainer = trainer = Trainer(self.cfg)
        self.batches = _reals(trainer.batch, self.cfg.resolution)
        reals = next(self.batches)
        t0 = time.perf_counter()
        trainer.train_step(self.batches)  # traces the steps with both regularisers
        trainer.train_step(self.batches)  # and without
        self.phases = {phase: partial(self._call, phase, reals) for phase in PHASES}
        for fn in self.phases.values():
            fn()
        self.setup = time.perf_counter() - t0
        self.times: dict[str, list[float]] = {phase: [] for phase in PHASES}
        self.per_iter: list[float] = []

    def _call(self, phase: str, reals: tf.Tensor) -> None:
        seed = tf.constant([0, 1], tf.int64)
        self.trainer.phase_grads(phase, seed, reals if phase[0] == "D" else None)[0][0].numpy()

    def row(self, name: str, flops: dict, rates: dict) -> dict:
        cfg, trainer = self.cfg, self.trainer
        t = {phase: statistics.median(v) for phase, v in self.times.items()}
        weights = phase_weights(cfg)
        amortised = sum(weights[phase] * t[phase] for phase in PHASES)
        per_iter = statistics.median(self.per_iter) if self.per_iter else amortised
        gflops = flops["dense"] * trainer.batch / amortised / 1e9
        shares = op_shares({phase: (fn, weights[phase]) for phase, fn in self.phases.items()})
        return {"config": name, "code": "now", "xla": cfg.xla, "augment": cfg.augment, "conv": cfg.conv_dtype,
                "batch": trainer.batch, "setup_s": self.setup,
                **{f"{phase.lower()}_ms": v * 1e3 for phase, v in t.items()},
                "sec_per_kimg": per_iter / trainer.batch * 1000, "images_per_s": trainer.batch / per_iter,
                "pl_share": t["Greg"] * weights["Greg"] / amortised,
                "gflop_per_img": flops["dense"] / 1e9, "blur_gflop": flops["blur"] / 1e9, "gflop_s": gflops,
                "of_f32_mm": gflops / rates["float32"], "of_bf16_mm": gflops / rates["bfloat16"], **shares}


def bench_config(name: str, variants: list[dict], rates: dict, steps: int | None = None) -> list[dict]:
    """Rows for `variants` (keyword sets of xla, augment, conv_dtype) of one config, their
    timings interleaved call by call and iteration block by iteration block."""
    runs = [_Variant(name, **{"xla": False, "augment": True, "conv_dtype": "float32", **v}) for v in variants]
    flops = flops_per_image(name)
    steps = 1 if any(r.cfg.xla for r in runs) else steps or STEPS[name]  # XLA on CPU: one timing is plenty
    for _ in range(steps):
        for run in runs:
            for phase, fn in run.phases.items():
                run.times[phase].append(_median_time(fn, 1))
    iterations = ITERATIONS[name]
    for _ in range(2 if iterations and len(runs) > 1 else 1 if iterations else 0):
        for run in runs:
            run.per_iter.append(_iterations(lambda: run.trainer.train_step(run.batches), iterations))
    return [run.row(name, flops, rates) for run in runs]


def flops_only(name: str) -> dict:
    """FLOPs per trained image of a config, traced without running (any size)."""
    flops = flops_per_image(name)
    return {"config": name, "gflop_per_img": flops["dense"] / 1e9, "blur_gflop": flops["blur"] / 1e9}


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
    parser.add_argument("--variants", action="store_true", help="also XLA and (demo) no augmentation")
    parser.add_argument("--flops-only", action="store_true", help="FLOPs per image only, nothing timed")
    parser.add_argument("--steps", type=int, help="timed calls per measurement (default: per config)")
    parser.add_argument("--float32-only", action="store_true",
                        help="no bfloat16 variant or rate: needed under ONEDNN_MAX_CPU_ISA=AVX2 (an AVX2-only "
                             "machine imitated on a newer one), where oneDNN aborts on a bfloat16 matmul")
    args = parser.parse_args(argv)
    wanted = args.what or ["demo", "64px", "128px"]
    configs = [w for w in wanted if w in CONFIGS]
    if args.flops_only:
        print("FLOPs per trained image (R1 and path length at their intervals)\n"
              + _table([flops_only(name) for name in configs]))
        return
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    dtypes = (tf.float32,) if args.float32_only else (tf.float32, tf.bfloat16)
    rates = {"bfloat16": float("nan")} | {dtype.name: matmul_rate(dtype) for dtype in dtypes}
    isa = os.environ.get("ONEDNN_MAX_CPU_ISA")
    print(f"TensorFlow {tf.__version__}, {os.cpu_count()} CPUs (load {load:.1f}), "
          f"GPUs: {len(tf.config.list_physical_devices('GPU'))}{f', ONEDNN_MAX_CPU_ISA={isa}' if isa else ''}; "
          f"2048^2 matmul: float32 {rates['float32']:.0f} GFLOP/s, bfloat16 {rates['bfloat16']:.0f} GFLOP/s",
          flush=True)
    before = load_before(args.before) if args.before else None
    rows, before_rows = [], []
    for name in configs:
        variants = [dict()] + ([] if args.float32_only else [dict(conv_dtype="bfloat16")])
        if args.variants:
            variants += [dict(xla=True)] + ([dict(augment=False)] if name == "demo" else [])
        if before is not None:
            before_rows.append(bench_before(before, args.before, name, args.steps))
            print(_table(before_rows[-1:]), flush=True)
        rows += bench_config(name, variants, rates, args.steps)
        print(_table(rows[-len(variants):]), flush=True)
    if before_rows:
        print(f"\nTraining throughput of {args.before}\n" + _table(before_rows))
    if rows:
        print("\nTraining throughput\n" + _table(rows))
    if "modconv" in wanted:
        print("\nModulated 3x3 conv, forward + backward\n" + _table(bench_modconv()))


if __name__ == "__main__":
    main(sys.argv[1:])
