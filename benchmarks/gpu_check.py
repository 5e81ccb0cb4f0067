"""GPU readiness check: what TensorFlow runs on, the precision training would take, one
256px and one 512px training step timed as sec/kimg beside upstream's published figures,
the sec/kimg to expect on common GPUs, and whether the dataset reader keeps up.

    make gpu-check
    .venv/bin/python benchmarks/gpu_check.py                      # --full on a GPU, --quick on the CPU
    .venv/bin/python benchmarks/gpu_check.py --dataset results/demo/round-1/dataset
    .venv/bin/python benchmarks/gpu_check.py --tiny               # a 32px toy model: seconds (tests)

The configs are the paper256 and paper512 presets (upstream's networks) at upstream's
one-GPU batch, 16 at 256px and 8 at 512px, as its published sec/kimg ran (its presets' 64
is split over 4-8 GPUs). With --full (the default on a GPU) sec/kimg is the long-run mix:
plain iterations, those with the path-length pass (every 4th) and those with R1 (every
16th), each timed after warm-up steps that trace them; a config that runs out of GPU
memory is tried again with accum_steps doubled (the same batch in more passes). With
--quick (the default on the CPU) only plain iterations are timed (the regularisers add
about a tenth in the long run), and on the CPU the batch shrinks to 4 at 256px and 2 at
512px (a step of 16 images at 256px takes a minute there): about 3 minutes on two cores.
On a GPU most of the time is tracing (tens of seconds per config), not the steps.

The expected sec/kimg per GPU are estimates, not measurements: the FLOPs per trained image
(bench_train's count, from the traced graphs) over an achieved throughput, the GPU's
dense tensor-core peak times one achieved fraction, calibrated on upstream's V100 figure
at 256px (see benchmarks/README.md, "GPU readiness check and expected sec/kimg").
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import statistics
import sys
import time
from pathlib import Path

# Warnings stay on: a GPU that is not seen is explained by TensorFlow's "Cannot dlopen" lines.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from bench_dataset import read_rate  # noqa: E402
from bench_train import _median_time, _reals, matmul_rate, phase_flops, phase_weights  # noqa: E402
from ganflow import devices  # noqa: E402
from ganflow.records import read_meta  # noqa: E402
from ganflow.runlog import SetupError  # noqa: E402
from ganflow.train_config import BY_RESOLUTION, TrainConfig, auto_conv_dtype  # noqa: E402
from ganflow.trainer import Trainer  # noqa: E402

# Images per step: on a GPU and with --full, upstream's one-GPU batch (its --cfg=auto, which
# the published figures below ran: the presets' networks, their batch of 64 split over 4-8
# GPUs); on the CPU with --quick, a few (a step of 16 images at 256px takes a minute there).
GPU_BATCH = {256: 16, 512: 8}
QUICK_BATCH = {256: 4, 512: 2}
# --tiny: a paper256-like toy at 32px, for tests.
TINY = dict(preset="paper256", resolution=32, channel_base=256, batch_size=4, mbstd_group=4)
# A timed call under this many seconds is repeated (up to 3, the median kept).
FAST_S = 5.0

# Published single-GPU sec/kimg of the official PyTorch code with the same networks as
# paper256 and paper512 (channel_base 16384 and 32768, channel_max 512), float16 in the 4
# highest resolutions: (code, GPU, sec/kimg as published).
ANCHORS = {
    256: [("stylegan2-ada-pytorch", "V100", "21.6-24.2"), ("stylegan3 --cfg=stylegan2", "V100", "20.84"),
          ("stylegan3 --cfg=stylegan2", "A100", "12.53")],
    512: [("stylegan2-ada-pytorch", "V100", "72.5-74.9"), ("stylegan3 --cfg=stylegan2", "V100", "71.59"),
          ("stylegan3 --cfg=stylegan2", "A100", "41.06")],
}
ANCHOR_SOURCES = (
    "stylegan2-ada-pytorch's README.md, 'Expected training time' (Tesla V100, --cfg=auto --aug=ada: "
    "batch 16 at 256px, 8 at 512px, mapping 2 layers), and stylegan3's docs/configs.md (linked from its "
    "README), 'Old StyleGAN2-ADA configurations' (the same settings as --cfg=stylegan2 --gpus=1 "
    "--batch=16 or 8 --map-depth=2)")
# Dense tensor-core peak, TFLOP/s, in the dtype conv_dtype auto takes on that GPU.
GPUS = [("T4", 65.0, "float16"), ("V100 SXM2", 125.0, "float16"), ("A100 SXM", 312.0, "bfloat16"),
        ("H100 SXM", 989.0, "bfloat16")]
# The achieved fraction of that peak is set so that the V100 at 256px gives upstream's ~22 s/kimg.
CALIBRATION = ("V100 SXM2", 256, 22.0)


def configs(args: argparse.Namespace, on_gpu: bool) -> list[dict]:
    """The TrainConfig settings to time, one per resolution (a batch of its own: the
    minibatch-stddev group its largest divisor up to 8, the presets' group)."""
    if args.tiny:
        return [dict(TINY, **({"batch_size": args.batch, "mbstd_group": math.gcd(args.batch, 8)} if args.batch
                              else {}))]
    out = []
    for res in args.resolutions:
        settings = {"preset": BY_RESOLUTION.get(res, "auto"), "resolution": res}
        batch = args.batch or (GPU_BATCH.get(res) if on_gpu or args.full else QUICK_BATCH.get(res, 4))
        if batch:
            settings.update(batch_size=batch, mbstd_group=math.gcd(batch, 8))
        out.append(settings)
    return out


def arch_key(settings: dict) -> tuple:
    """What FLOPs per image depend on (not the batch, the stddev group or the precision)."""
    return tuple(sorted((k, v) for k, v in settings.items()
                        if k not in ("batch_size", "mbstd_group", "accum_steps", "conv_dtype")))


_FLOPS: dict[tuple, dict] = {}


def flops_of(settings: dict) -> dict[str, dict[str, float]]:
    """phase_flops of a config (traced once per architecture, in float32: FLOPs do not
    depend on the precision, and accumulation in one pass)."""
    key = arch_key(settings)
    if key not in _FLOPS:
        _FLOPS[key] = phase_flops({**settings, "conv_dtype": "float32", "accum_steps": 1})
    return _FLOPS[key]


def _num(x: float) -> str:
    """3 significant digits, whole numbers from 1000 on."""
    return f"{x:,.0f}" if x >= 1000 else f"{x:.3g}"


def dense(flops: dict, weights: dict) -> float:
    return sum(weights.get(phase, 0.0) * f["dense"] for phase, f in flops.items())


def _sync(trainer: Trainer) -> None:
    """Wait for the step's last kernels (the EMA update) on an asynchronous device."""
    trainer.G_ema.weights[-1].numpy()


def time_config(settings: dict, full: bool) -> dict:
    """Warm up and time a config's training steps: seconds per iteration in the long run
    (full) or of plain iterations (quick), plus what it took to get there."""
    cfg = TrainConfig.from_dict(settings)
    t0 = time.perf_counter()
    trainer = Trainer(cfg)
    batches = _reals(trainer.batch, cfg.resolution)
    # (g_steps, d_steps) before a step: 0 runs the regulariser of that network
    # (pl_interval, r1_interval divide 0), 1 skips it.
    kinds = {"plain": (1, 1), "Greg": (0, 1), "Dreg": (1, 0)} if full else {"plain": (1, 1)}

    def step(counters: tuple[int, int]) -> None:
        trainer.g_steps.assign(counters[0])
        trainer.d_steps.assign(counters[1])
        trainer.train_step(batches)
        _sync(trainer)

    # Warm-up: traces and first runs of every step function the timed steps call.
    for counters in ([(0, 0), (1, 1)] if full else [(1, 1)]):
        step(counters)
    setup = time.perf_counter() - t0
    times = {}
    for kind, counters in kinds.items():
        runs = [_median_time(lambda: step(counters), 1)]
        while len(runs) < 3 and runs[0] < FAST_S:
            runs.append(_median_time(lambda: step(counters), 1))
        times[kind] = statistics.median(runs)
    weights = phase_weights(cfg)
    per_iter = times["plain"]
    if full:
        per_iter += (weights["Greg"] * max(0.0, times["Greg"] - times["plain"])
                     + weights["Dreg"] * max(0.0, times["Dreg"] - times["plain"]))
    return {"cfg": cfg, "batch": trainer.batch, "accum": cfg.accum_steps, "setup_s": setup, "times": times,
            "per_iter": per_iter}


def run_config(settings: dict, full: bool, on_gpu: bool) -> dict | None:
    """time_config, with accum_steps doubled after running out of GPU memory."""
    accum = settings.get("accum_steps", 1)
    while True:
        try:
            return time_config({**settings, "accum_steps": accum}, full)
        except tf.errors.ResourceExhaustedError:
            pass
        # Out of the except block: the failed trainer is no longer held by the traceback.
        gc.collect()
        keras.backend.clear_session()
        batch = TrainConfig.from_dict(settings).at_resolution("batch_size")
        if not on_gpu or batch % (accum * 2):
            print(f"   out of memory at batch {batch}, accum_steps {accum}: this config is left out")
            return None
        accum *= 2
        print(f"   out of memory at batch {batch}: trying accum_steps {accum} (micro-batches of "
              f"{batch // accum})", flush=True)


def describe_config(cfg: TrainConfig, batch: int, accum: int) -> str:
    return (f"{cfg.resolution}px, preset {cfg.preset} (channel_base {cfg.channel_base}, channel_max "
            f"{cfg.channel_max}), batch {batch}{f' in {accum} passes' if accum > 1 else ''}, {cfg.conv_dtype}")


def anchor_text(res: int) -> str:
    if res not in ANCHORS:
        return f"no published single-GPU figure at {res}px (anchors: 256px and 512px, listed below)"
    return "published: " + "; ".join(f"{code} on one {gpu} {shown} s/kimg" for code, gpu, shown in ANCHORS[res])


def estimates(flops256: float, flops512: float) -> tuple[float, list[tuple]]:
    """(the achieved fraction, rows of (GPU, peak, dtype, sec/kimg at 256px, at 512px))."""
    gpu, res, target = CALIBRATION
    peak = dict((g, p) for g, p, _ in GPUS)[gpu]
    fraction = (flops256 if res == 256 else flops512) * 1000 / target / (peak * 1e12)
    rows = [(g, p, dtype, flops256 * 1000 / (fraction * p * 1e12), flops512 * 1000 / (fraction * p * 1e12))
            for g, p, dtype in GPUS]
    return fraction, rows


def peak_of(name: str) -> tuple[str, float] | None:
    """The table's GPU whose model the device name holds (e.g. 'NVIDIA A100-SXM4-80GB')."""
    for g, p, _ in GPUS:
        if g.split()[0] in name:
            return g, p
    return None


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="small batches, plain iterations (default on the CPU)")
    mode.add_argument("--full", action="store_true", help="upstream's batch 64, regularisers amortised "
                                                          "(default on a GPU)")
    parser.add_argument("--resolutions", type=int, nargs="+", default=[256, 512], metavar="PX")
    parser.add_argument("--batch", type=int, help="images per step (default: the preset's, or --quick's)")
    parser.add_argument("--tiny", action="store_true", help="a 32px toy model (channel_base 256, batch 4): tests")
    parser.add_argument("--dataset", type=Path, help="a packed dataset directory whose reader to time, e.g. "
                                                     "results/demo/round-1/dataset")
    parser.add_argument("--seconds", type=float, default=3.0, help="reader timing, seconds per resolution")
    args = parser.parse_args(argv)
    start = time.perf_counter()

    # 1. Devices
    gpus = devices.describe()
    build = devices.tf_build()
    on_gpu = bool(gpus)
    args.full = args.full or (on_gpu and not args.quick and not args.tiny)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"GPU readiness check: TensorFlow {tf.__version__} ({devices.BUILDS[build]}), {os.cpu_count()} CPUs "
          f"(load {load:.1f})")
    print(f"1. devices: {devices.summary(gpus)}")
    if not on_gpu:
        print("   no GPU: this runs on the CPU, and the figures below are the CPU's")
        if build != "cuda":
            print(f"   for a GPU: {devices.GPU_INSTALL}")
        else:
            print("   the CUDA build sees no GPU: check `nvidia-smi` and the 'Cannot dlopen' / 'cuInit' lines above "
                  "(TensorFlow 2.21 wants CUDA 12 and a driver >= 525)")

    # 2. Precision
    dtype, reason = auto_conv_dtype(devices=[])
    print(f"2. dtype: training would compute its convolutions in {dtype} (conv_dtype auto): {reason}")
    rate = matmul_rate(tf.as_dtype(dtype), n=8192 if on_gpu else 2048)
    print(f"   {8192 if on_gpu else 2048}^2 matmul in {dtype}: {rate:,.0f} GFLOP/s (this device's dense ceiling)")

    # 3. Training steps
    if args.full:
        mode_text = "full: sec/kimg of the long-run mix, path length every 4th and R1 every 16th iteration"
    else:
        mode_text = "quick: plain iterations only, the regularisers would add about a tenth in the long run"
    if args.tiny:
        mode_text += "; --tiny: a 32px toy model, not a real config"
    elif args.batch:
        mode_text += f"; batch {args.batch} (--batch)"
    elif on_gpu or args.full:
        mode_text += (f"; upstream's one-GPU batch, {', '.join(f'{b} at {r}px' for r, b in GPU_BATCH.items())}, "
                      "as its published figures ran")
    else:
        mode_text += (f"; batch shrunk to {', '.join(f'{b} at {r}px' for r, b in QUICK_BATCH.items())}, as "
                      "upstream's 16 and 8 take minutes a step here")
    print(f"3. training steps ({mode_text}). The first steps trace (setup), the next are timed", flush=True)
    measured = []
    for settings in configs(args, on_gpu):
        got = run_config(settings, args.full, on_gpu)
        if got is None:
            continue
        cfg, batch = got["cfg"], got["batch"]
        flops = flops_of(settings)
        weights = phase_weights(cfg) if args.full else {"Gmain": 1.0, "Dmain": 1.0}
        gflop = dense(flops, weights) / 1e9
        sec_kimg = got["per_iter"] / batch * 1000
        images_s = batch / got["per_iter"]
        achieved = gflop * images_s
        t = got["times"]
        parts = ", ".join(f"{k} {v:.3g} s" for k, v in t.items())
        print(f"   {describe_config(cfg, batch, got['accum'])}: setup (tracing, first steps) {got['setup_s']:.0f} s; "
              f"step {parts}")
        print(f"     -> {_num(sec_kimg)} sec/kimg, {images_s:.3g} images/s; {_num(gflop)} GFLOP/image dense "
              f"-> {achieved:,.0f} GFLOP/s ({achieved / rate:.0%} of the matmul rate)")
        print(f"     {anchor_text(cfg.resolution)}")
        measured.append({"res": cfg.resolution, "sec_kimg": sec_kimg, "images_s": images_s, "batch": batch,
                         "tflops": achieved / 1000})
        if on_gpu and args.full and peak_of(gpus[0]["name"]):
            g, p = peak_of(gpus[0]["name"])
            print(f"     {achieved / 1000:.3g} TFLOP/s achieved = {achieved / 1000 / p:.0%} of a {g}'s "
                  f"{p:g} TFLOP/s peak")
        sys.stdout.flush()
        gc.collect()

    # 4. Expected sec/kimg on common GPUs
    f256, f512 = (dense(flops_of(s), phase_weights(TrainConfig.from_dict(s)))
                  for s in ({"preset": "paper256", "resolution": 256}, {"preset": "paper512", "resolution": 512}))
    fraction, rows = estimates(f256, f512)
    print(f"4. expected sec/kimg on common GPUs: estimates, not measurements. FLOPs per trained image (dense, "
          f"counted from the traced graphs, R1 and path length at their intervals): paper256 {f256 / 1e9:,.0f} "
          f"GFLOP, paper512 {f512 / 1e9:,.0f} GFLOP; over {fraction:.0%} of each GPU's dense peak, the fraction "
          f"that makes the {CALIBRATION[0]} at {CALIBRATION[1]}px take upstream's ~{CALIBRATION[2]:g} s/kimg")
    print(f"   {'GPU':<10} {'peak TFLOP/s':<18} {'256px s/kimg':>12} {'512px s/kimg':>12}   published (one GPU)")
    for g, p, dt, s256, s512 in rows:
        model = g.split()[0]
        pub = ", ".join(f"{r}px " + " / ".join(shown for _, gpu, shown in ANCHORS[r] if gpu == model)
                        for r in (256, 512) if any(gpu == model for _, gpu, _ in ANCHORS[r]))
        print(f"   {g:<10} {f'{p:g} ({dt})':<18} {_num(s256):>12} {_num(s512):>12}   {pub or '-'}")
    print(f"   anchors: {ANCHOR_SOURCES}. Upstream gains 1.7x from V100 to A100 where the peaks differ 2.5x: "
          f"the A100 and H100 rows are likely optimistic")

    # 5. Reader
    reader = None
    if args.dataset is None:
        print("5. reader: not timed; pass --dataset DIR (a packed dataset, e.g. results/demo/round-1/dataset after "
              "`make demo`) to compare its images/s with what the step consumes")
    else:
        try:
            native = int(read_meta(args.dataset)["resolution"])
        except (SetupError, OSError, KeyError, ValueError) as e:
            native = None
            print(f"5. reader: cannot read {args.dataset}: {e}")
        if native:
            at = [m for m in measured if m["res"] <= native] or [{"res": native, "images_s": None, "batch": 32}]
            print(f"5. reader: {args.dataset} holds {native}px images (timed alone, {args.seconds:g} s each)")
            for m in at:
                images_s, cores = read_rate(args.dataset, m["res"], True, args.seconds, batch=m["batch"])
                if m["images_s"] is None:
                    print(f"   at {m['res']}px: {images_s:,.0f} images/s ({cores:.2f} cores busy); no step was "
                          f"timed at {m['res']}px (the reader does not upsample: the steps above need a dataset "
                          f"of at least their size)")
                    continue
                keeps = images_s >= m["images_s"]
                print(f"   at {m['res']}px: {images_s:,.0f} images/s ({cores:.2f} cores busy); the step consumes "
                      f"{m['images_s']:.3g} images/s: {'keeps up' if keeps else 'falls behind'} "
                      f"({_num(images_s / m['images_s'])}x)")
                reader = keeps if reader is None else reader and keeps

    # 6. Verdict
    seen = f"GPU seen ({gpus[0]['name']}{f' and {len(gpus) - 1} more' if len(gpus) > 1 else ''})" if on_gpu \
        else "no GPU (CPU only)"
    reads = {None: "reader not timed (--dataset DIR)", True: "the reader keeps up",
             False: "the reader falls behind (training would be data-bound)"}[reader]
    speeds = ", ".join(f"{_num(m['sec_kimg'])} s/kimg at {m['res']}px" for m in measured)
    print(f"verdict: {seen}; computes in {dtype}; {speeds or 'no step timed'}; {reads} "
          f"(check took {time.perf_counter() - start:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
