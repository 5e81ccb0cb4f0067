"""The training stage: runs the Trainer (trainer.py) to total_kimg in a run directory of
snapshots, per-tick logs, fakes grids and TensorBoard events, resumes from it after a
kill exactly where the killed run was (data stream included), falls back past damaged
snapshots, refuses to resume under another architecture or dataset, and exports the result.

Kept apart from the step maths (trainer.py, losses.py) and from the exported weights'
format (weights.py), which the stages after training load without importing this.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import tensorflow as tf
from PIL import Image
from tensorflow.core.framework import summary_pb2

from . import devices, networks, weights
from . import swd as swd_lib
from .feature_metrics import METRICS, measurer, shown
from .imaging import sha256_file
from .media import save_png, tile
from .records import dataset_fingerprint, training_dataset
from .runlog import SetupError, logged, progress
from .tables import atomic_open, atomic_path, write_tsv
from .trainlog import append_log, read_log, write_log
from .train_config import ARCH_KEYS, WEIGHTLESS_KEYS, TrainConfig
from .trainer import Trainer, cluster_resolver, is_chief, make_strategy, step_batches

log = logging.getLogger(__name__)

SNAPSHOT_RE = re.compile(r"^snapshot-(\d{12})$")
CHECKSUMS = "SHA256SUMS"  # in sha256sum's format: `sha256sum -c SHA256SUMS` checks a snapshot by hand


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()


# ----- run directory: snapshots, log, frames --------------------------------------------


def _snapshots(run_dir: Path) -> list[Path]:
    """Snapshots, oldest first. One is written under a temporary name and renamed into
    place once whole, so a killed write is never listed; _damage finds later harm."""
    root = run_dir / "snapshots"
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if SNAPSHOT_RE.match(p.name) and p.is_dir())


def _damage(snapshot: Path) -> str | None:
    """What makes a snapshot untrustworthy (a file missing, cut short or changed since its
    checksums were written, e.g. by a node dying mid-flush or a full disk), else None."""
    try:
        lines = (snapshot / CHECKSUMS).read_text().splitlines()
    except (OSError, UnicodeDecodeError) as e:
        return f"{CHECKSUMS} is missing or unreadable ({e})"
    listed = {}
    for line in lines:
        digest, sep, name = line.partition("  ")
        if not sep or len(digest) != 64:
            return f"{CHECKSUMS} is malformed"
        listed[name] = digest
    present = {f.name for f in snapshot.iterdir()} - {CHECKSUMS}
    for name in sorted(present | listed.keys() | {"meta.json", "ckpt.index"}):
        if name not in present:
            return f"{name} is missing"
        if name not in listed:
            return f"{name} is not in {CHECKSUMS}"
        try:
            if sha256_file(snapshot / name) != listed[name]:
                return f"{name} does not match its checksum"
        except OSError as e:
            return f"{name} is unreadable ({e})"
    return None


def _set_aside(snapshot: Path) -> Path:
    """Rename a damaged snapshot out of the listing, keeping it: it may yet be rescued."""
    aside, n = snapshot.with_name(f"{snapshot.name}.broken"), 1
    while aside.exists():
        aside, n = snapshot.with_name(f"{snapshot.name}.broken-{n}"), n + 1
    os.rename(snapshot, aside)
    return aside


def _newest_intact(run_dir: Path, set_aside: bool = True) -> Path | None:
    """The newest snapshot whose checksums hold; damaged newer ones are set aside with a
    warning, so that a damaged snapshot costs the progress since the one before, not the
    run (by the chief alone: the other workers of a cluster only skip them)."""
    damaged = []
    for snapshot in reversed(_snapshots(run_dir)):
        damage = _damage(snapshot)
        if damage is None:
            return snapshot
        if not set_aside:
            continue
        aside = _set_aside(snapshot)
        damaged.append(aside)
        log.warning("snapshot %s is damaged: %s; kept as %s, resuming from an older snapshot",
                    snapshot, damage, aside.name)
    if damaged:
        log.warning("no intact snapshot left in %s: training starts afresh (the damaged ones are kept as "
                    "%s)", run_dir / "snapshots", ", ".join(p.name for p in damaged))
    return None


def _save_snapshot(trainer: Trainer, run_dir: Path, meta: dict, keep: int) -> Path:
    root = run_dir / "snapshots"
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"snapshot-{meta['nimg']:012d}"
    tmp = root / f".partial-{meta['nimg']:012d}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    trainer.checkpoint.write(str(tmp / "ckpt"))
    (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
    sums = "".join(f"{sha256_file(f)}  {f.name}\n" for f in sorted(tmp.iterdir()))
    with atomic_open(tmp / CHECKSUMS) as fh:  # last: what it lists is complete
        fh.write(sums)
    weights.fsync_tree(tmp)
    if final.exists():
        shutil.rmtree(final)
    os.rename(tmp, final)
    for old in _snapshots(run_dir)[:-max(keep, 1)]:
        shutil.rmtree(old)
    return final


def _architecture_changes(saved: dict[str, Any], cfg: TrainConfig) -> list[str]:
    return [f"{k} {saved.get(k)} -> {v}" for k, v in cfg.architecture().items() if saved.get(k) != v]


def _check_resume(meta: dict, cfg: TrainConfig, fingerprint: str, snapshot: Path, run_dir: Path) -> list[str]:
    """Refuse a snapshot of another architecture or dataset; list other changed settings."""
    separate = (f"to train as a separate run instead, give the config a new `run` name or move {run_dir} "
                f"aside (its snapshots are that run's only copy)")
    arch = _architecture_changes(meta["architecture"], cfg)
    if arch:
        raise SetupError(
            f"cannot resume from {snapshot}: it has a different architecture ({', '.join(arch)}); to continue "
            f"that run, set these settings back; {separate}")
    frozen = meta["config"].get("freeze_d", 0)
    if frozen != cfg.freeze_d:  # the optimizer's state holds one slot per trainable variable
        raise SetupError(f"cannot resume from {snapshot}: it froze {frozen} discriminator layers (freeze_d) and "
                         f"the config says {cfg.freeze_d}; set freeze_d back to {frozen} to continue that run; "
                         f"{separate}")
    now = json.loads(json.dumps(cfg.to_dict()))  # as stored: resolution keys become strings
    changes = [f"{k} {v!r} -> {now.get(k)!r}" for k, v in meta["config"].items() if now.get(k) != v]
    if meta["dataset_fingerprint"] != fingerprint:
        change = f"dataset fingerprint {meta['dataset_fingerprint'][:12]} -> {fingerprint[:12]}"
        if cfg.on_dataset_change == "stop":
            raise SetupError(
                f"cannot resume from {snapshot}: it was trained on a different dataset ({change}); to continue "
                f"that run, restore the dataset it was trained on (the earlier images and dataset settings); "
                f"{separate}, with init_from={run_dir} to fine-tune it on the new data; or set "
                f"train.on_dataset_change to continue (its weights go on training on the new data) or restart")
        log.warning("the dataset changed since %s (%s): its weights go on training on the new data "
                    "(train.on_dataset_change: continue; 'restart' starts afresh, 'stop' refuses)", snapshot, change)
        changes.append(change)
    return changes


def _retire(run_dir: Path, fingerprint: str) -> Path:
    """Move a run's snapshots aside (never deleted: they are its only copy) so that a
    restarted run begins afresh in the same place."""
    aside, n = run_dir / f"retired-{fingerprint[:12]}", 1
    while aside.exists():
        aside, n = run_dir / f"retired-{fingerprint[:12]}-{n}", n + 1
    aside.mkdir()
    os.rename(run_dir / "snapshots", aside / "snapshots")
    return aside


def _check_transfer(arch: dict[str, Any], cfg: TrainConfig, source: Path) -> None:
    """Transfer copies every weight, so the networks must be equal but for the settings
    that shape no weight (the stddev group); a mismatch names the settings to give."""
    if arch.get("c_dim"):
        raise SetupError(f"cannot initialise from {source}: it is a conditional model ({arch['c_dim']} labels), and "
                         "ganflow trains unconditional models only so far")
    differ = [k for k in ARCH_KEYS if k not in WEIGHTLESS_KEYS and arch.get(k) != getattr(cfg, k)]
    if differ:
        have = ", ".join(f"{k} {getattr(cfg, k)}" for k in differ)
        want = ", ".join(f"{k}: {arch.get(k)}" for k in differ)
        raise SetupError(f"cannot initialise from {source}: its networks differ ({have} here); to start from it, "
                         f"set these train settings to its values: {want}")
    for k in WEIGHTLESS_KEYS:
        if arch.get(k) != getattr(cfg, k):
            log.info("init_from: %s %s in %s, %s here (it shapes no weight)", k, arch.get(k), source, getattr(cfg, k))


def _transfer_source(path: Path) -> tuple[Path, dict[str, Any]]:
    """init_from may name a run directory (newest snapshot), a snapshot, or an export."""
    if (path / "generator" / "generator.json").is_file():
        arch = {**weights.read_json(path / "discriminator" / "discriminator.json")["architecture"],
                **weights.read_json(path / "generator" / "generator.json")["architecture"]}
        return path, arch
    if (path / "meta.json").is_file():
        damage = _damage(path)
        if damage:
            raise SetupError(f"init_from={path} is a damaged snapshot ({damage}); point it at another one")
        return path, weights.read_json(path / "meta.json")["architecture"]
    snaps = [s for s in _snapshots(path) if _damage(s) is None]  # another run's: only read, never set aside
    if not snaps:
        raise SetupError(f"init_from={path} holds no intact snapshot or exported generator; point it at a "
                         f"finished run's directory, one of its snapshots, or its export directory")
    return snaps[-1], weights.read_json(snaps[-1] / "meta.json")["architecture"]


def _save_grid(images: np.ndarray, cols: int, rows: int, cell_px: int, path: Path) -> None:
    u8 = networks.to_uint8(images)
    _, h, w, _ = u8.shape
    img = Image.fromarray(tile(u8, cols))
    if h > cell_px:
        img = img.resize((cols * cell_px, rows * round(cell_px * h / w)), Image.LANCZOS)
    save_png(img, path)


def _tb_metadata(plugin: str, data_class: int) -> summary_pb2.SummaryMetadata:
    meta = summary_pb2.SummaryMetadata(data_class=data_class)
    meta.plugin_data.plugin_name = plugin
    return meta


def _tensorboard(writer: tf.summary.SummaryWriter, step: int, scalars: dict[str, float], frame: Path) -> None:
    """Scalars and the fakes grid in TensorBoard's formats, through TF's own summary
    writer, so that writing logs does not need the tensorboard package installed."""
    scalar_md = _tb_metadata("scalars", summary_pb2.DATA_CLASS_SCALAR)
    with writer.as_default(step=step):
        for key, value in scalars.items():
            tf.summary.write(key, tf.constant(value, tf.float32), metadata=scalar_md)
        with Image.open(frame) as img:
            size = img.size
        image = tf.constant([str(size[0]), str(size[1]), frame.read_bytes()])
        tf.summary.write("fakes", image, metadata=_tb_metadata("images", summary_pb2.DATA_CLASS_BLOB_SEQUENCE))
    writer.flush()


def _frame_name(nimg: int) -> str:
    return f"fakes-{nimg / 1000:010.3f}.png"


def _image_stream(dataset: tf.data.Dataset, resolution: int) -> tf.data.Dataset:
    """Single images from a dataset of images or of batches, checked against the model."""
    spec = dataset.element_spec
    if not isinstance(spec, tf.TensorSpec) or spec.shape.rank not in (3, 4):
        raise SetupError(f"the training dataset must yield image tensors [H, W, 3] or batches "
                         f"[N, H, W, 3]; it yields {spec}")
    if spec.shape.rank == 4:
        dataset = dataset.unbatch()
        spec = dataset.element_spec
    if not spec.shape.is_compatible_with([resolution, resolution, 3]) or spec.dtype != tf.float32:
        raise SetupError(f"the training dataset yields {spec.dtype.name} images of shape {spec.shape} but "
                         f"the model needs float32 [{resolution}, {resolution}, 3]; rebuild the "
                         f"dataset at that resolution or change `resolution`")
    return dataset


def _swd_reference(images: tf.data.Dataset, cfg: TrainConfig) -> list[np.ndarray]:
    batches = (b.numpy() for b in images.take(cfg.swd_images).batch(64))
    return swd_lib.descriptors_from_batches(batches, cfg.swd_patches, seed=cfg.seed)


def _swd_now(trainer: Trainer, reference: list[np.ndarray], cfg: TrainConfig) -> dict[str, float]:
    n = sum(len(d) for d in reference[:1]) // cfg.swd_patches
    z = np.random.default_rng(cfg.seed + 1).standard_normal((n, cfg.z_dim)).astype(np.float32)
    batches = (trainer.sample(z[i:i + 64]) for i in range(0, n, 64))
    fake = swd_lib.descriptors_from_batches(batches, cfg.swd_patches, seed=cfg.seed + 1)
    return swd_lib.swd(reference, fake, seed=cfg.seed)


def _export(trainer: Trainer, meta: dict, rows: list[dict], run_dir: Path, out_dir: Path) -> None:
    """The exported networks, and the frames and log of the run (the rule's outputs)."""
    weights.write_export(out_dir, trainer.G_ema, trainer.D,
                         {k: meta[k] for k in ("nimg", "kimg", "dataset_fingerprint", "config")})
    frames = out_dir / "frames"
    frames.mkdir(parents=True, exist_ok=True)
    wanted = {row["frame"] for row in rows}
    for stale in frames.iterdir():
        if stale.name not in wanted:
            stale.unlink()
    for name in sorted(wanted):
        with atomic_path(frames / name) as tmp:
            shutil.copyfile(run_dir / "frames" / name, tmp)
    write_tsv(out_dir / "frames.tsv", ({"kimg": row["kimg"], "path": frames / row["frame"]} for row in rows),
              ["kimg", "path"])
    write_log(out_dir / "log.csv", rows)


# ----- the training run -------------------------------------------------------------------


def dataset_stream(dataset_dir: str | os.PathLike, cfg: TrainConfig) -> Callable[[int], tf.data.Dataset]:
    """A packed dataset as train() reads it: start -> batches from image `start` on. The reader
    does not mirror: training mirrors inside its step, reproducibly on resume."""
    def stream(start: int) -> tf.data.Dataset:
        return training_dataset(Path(dataset_dir), cfg.resolution, cfg.at_resolution("batch_size"),
                                            mirror=False, seed=cfg.seed, start=start)
    return stream


def train(cfg: TrainConfig, stream: Callable[[int], tf.data.Dataset], dataset_fingerprint: str,
          run_dir: str | os.PathLike, out_dir: str | os.PathLike, *,
          init_from: str | os.PathLike | None = None, strategy: tf.distribute.Strategy | None = None,
          measure: Callable[[networks.Generator], dict] | None = None) -> dict[str, Any]:
    """Train until total_kimg, resuming from run_dir's newest intact snapshot if there is one.

    `stream(start)` is the endless training stream (images or batches) from image `start`
    on, the same images for the same start in every process (dataset_stream): a resumed
    run then reads exactly what the killed one would have.
    run_dir (snapshots, running log, frames, TensorBoard) must lie outside the rule's
    declared outputs; out_dir receives the exports. init_from only applies to a fresh
    run: a resumed run continues its own weights. `strategy` (default: from cfg.devices)
    may span worker processes: each runs train(), only the chief writes files. `measure`
    (the chief's: feature_metrics.measurer) gives the EMA generator's metrics for the log every
    cfg.metrics_ticks ticks.
    """
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    strategy = strategy or make_strategy(cfg.devices)
    chief = is_chief(strategy)
    run_dir.mkdir(parents=True, exist_ok=True)
    # The resolved settings (what the snapshots and the export's config record too).
    log.info("training settings: %s", cfg.describe())
    log.info("convolutions compute in %s (%s); %d replica(s)%s", cfg.conv_dtype, cfg.conv_dtype_reason,
             strategy.num_replicas_in_sync, "" if chief else "; this worker writes no files (the chief does)")
    images = _image_stream(stream(0), cfg.resolution)
    trainer = Trainer(cfg, strategy)
    if trainer.frozen_d:
        log.info("Freeze-D: %d discriminator layers keep their weights (%s)", len(trainer.frozen_d),
                 ", ".join(trainer.frozen_d))
    for partial_dir in (run_dir / "snapshots").glob(".partial-*") if chief else ():
        shutil.rmtree(partial_dir, ignore_errors=True)
    log_path, frames_dir = run_dir / "log.csv", run_dir / "frames"
    newest = _newest_intact(run_dir, set_aside=chief)
    if newest and cfg.on_dataset_change == "restart":
        old = weights.read_json(newest / "meta.json")["dataset_fingerprint"]
        if old != dataset_fingerprint:
            log.warning("the dataset changed since %s (fingerprint %s -> %s): training starts afresh "
                        "(train.on_dataset_change: restart)%s", newest, old[:12], dataset_fingerprint[:12],
                        f"; its snapshots are kept in {_retire(run_dir, old)}" if chief else "")
            newest = None
    resumed_from = transferred_from = None
    if newest:
        meta = weights.read_json(newest / "meta.json")
        changes = _check_resume(meta, cfg, dataset_fingerprint, newest, run_dir)
        trainer.restore(str(newest / "ckpt"))  # and the configured learning rates
        resumed_from = newest
        log.info("resuming %s at kimg %.3f%s", run_dir, meta["kimg"],
                 f" with changed settings: {'; '.join(changes)}" if changes else "")
        if init_from is not None:
            log.info("init_from=%s ignored: %s continues its own snapshot", init_from, run_dir)
        rows = [r for r in read_log(log_path) if float(r["kimg"]) <= meta["kimg"] + 1e-9]
    else:
        rows = []
        if chief:
            shutil.rmtree(frames_dir, ignore_errors=True)
        if init_from is not None:
            source, arch = _transfer_source(Path(init_from))
            _check_transfer(arch, cfg, source)
            trainer.load_networks(source)
            transferred_from = source
            log.info("initialised %s from %s", run_dir, source)
    if chief:
        write_log(log_path, rows)
        for stale in frames_dir.glob("*.png") if frames_dir.is_dir() else []:
            if stale.name not in {r["frame"] for r in rows}:
                stale.unlink()

    batches = step_batches(_image_stream(stream(int(trainer.nimg.numpy())), cfg.resolution), trainer)
    # The stream's first images, resumed or not (the chief's: only it measures).
    reference = _swd_reference(images, cfg) if chief else []
    cols, grid_rows = cfg.grid
    grid_z = np.random.default_rng(cfg.seed).standard_normal((cols * grid_rows, cfg.z_dim)).astype(np.float32)
    writer = tf.summary.create_file_writer(str(run_dir / "tensorboard")) if chief else None
    total_nimg = int(round(cfg.total_kimg * 1000))
    nimg = int(trainer.nimg.numpy())
    seconds = float(rows[-1]["seconds"]) if rows else 0.0
    tick = int(rows[-1]["tick"]) if rows else 0
    start_kimg = nimg / 1000
    last_swd = None

    def meta_now() -> dict:
        return {"nimg": nimg, "kimg": nimg / 1000, "d_steps": int(trainer.d_steps.numpy()),
                "dataset_fingerprint": dataset_fingerprint, "architecture": cfg.architecture(),
                "architecture_fingerprint": _digest(cfg.architecture()), "config": cfg.to_dict(),
                "config_fingerprint": _digest(cfg.to_dict()), "written": time.strftime("%Y-%m-%dT%H:%M:%S")}

    def finish_tick(stats: dict[str, float], step_seconds: float, tick_imgs: int, tick_begun: float,
                    with_swd: bool) -> None:
        nonlocal last_swd
        if not chief:
            return
        frame = _frame_name(nimg)
        _save_grid(trainer.sample(grid_z), cols, grid_rows, cfg.grid_cell_px, frames_dir / frame)
        scores = _swd_now(trainer, reference, cfg) if with_swd else {}
        if scores:
            last_swd = scores["swd"]
        if measure and cfg.metrics_ticks and (tick % cfg.metrics_ticks == 0 or nimg >= total_nimg):
            measured = measure(trainer.G_ema)
            scores.update({k: measured[k] for k in METRICS if k in measured})
            log.info("kimg %.3f: %s", nimg / 1000, shown(measured))
        steps = tick_imgs / (trainer.batch * cfg.d_repeats)  # stats hold the means over these
        row = {"kimg": f"{nimg / 1000:.3f}", "tick": tick, "step": int(trainer.d_steps.numpy()) // cfg.d_repeats,
               "seconds": f"{seconds:.2f}", "sec_per_tick": f"{time.perf_counter() - tick_begun:.2f}",
               "sec_per_kimg": f"{step_seconds / (tick_imgs / 1000):.3f}" if tick_imgs else "",
               "images_per_sec": f"{tick_imgs / step_seconds:.2f}" if tick_imgs else "",
               # The share of the steps' time spent waiting for the reader: above a few
               # percent, training is data-bound and images_per_sec is the reader's rate.
               "data_wait_pct": f"{100 * stats['data_wait'] * steps / step_seconds:.1f}" if tick_imgs else "",
               "augment_p": f"{float(trainer.augment_p.numpy()):.4f}",
               "swd": f"{scores['swd']:.4f}" if "swd" in scores else "", "frame": frame}
        for key in METRICS:
            row[key] = f"{scores[key]:.6g}" if key in scores else ""
        for key in ("loss_g", "loss_d", "r1", "pl", "d_real", "d_fake"):
            row[key] = f"{stats[key]:.5f}" if key in stats else ""
        append_log(log_path, row)
        scalars = {**stats, **scores}
        if row["sec_per_kimg"]:
            scalars["sec_per_kimg"] = float(row["sec_per_kimg"])
        _tensorboard(writer, nimg, scalars, frames_dir / frame)
        rows.append(row)

    if not rows:
        finish_tick({}, 0.0, 0, time.perf_counter(), with_swd=True)
    snapshot = newest
    bar = progress(total=cfg.total_kimg, initial=round(nimg / 1000, 3), unit="kimg", dynamic_ncols=True,
                   bar_format="{l_bar}{bar}| {n:.1f}/{total:.1f} kimg [{elapsed}<{remaining}]{postfix}",
                   disable=nimg >= total_nimg)
    tick_nimg, tick_begun, step_seconds = nimg, time.perf_counter(), 0.0
    sums: dict[str, float] = {}
    counts: dict[str, int] = {}
    while nimg < total_nimg:
        t0 = time.perf_counter()
        stats = trainer.train_step(batches)
        elapsed = time.perf_counter() - t0
        step_seconds += elapsed
        seconds += elapsed
        for key, value in stats.items():
            sums[key] = sums.get(key, 0.0) + value
            counts[key] = counts.get(key, 0) + 1
        new_nimg = int(trainer.nimg.numpy())
        bar.update(min(new_nimg, total_nimg) / 1000 - bar.n)
        bar.set_postfix(loss_g=f"{stats['loss_g']:.3f}", loss_d=f"{stats['loss_d']:.3f}", refresh=False)
        nimg = new_nimg
        if nimg >= tick_nimg + cfg.tick_kimg * 1000 or nimg >= total_nimg:
            tick += 1
            snapshot_due = tick % cfg.snapshot_ticks == 0 or nimg >= total_nimg
            means = {k: sums[k] / counts[k] for k in sums}
            finish_tick(means, step_seconds, nimg - tick_nimg, tick_begun, with_swd=snapshot_due)
            if snapshot_due and chief:
                snapshot = _save_snapshot(trainer, run_dir, meta_now(), cfg.keep_snapshots)
            tick_nimg, tick_begun, step_seconds, sums, counts = nimg, time.perf_counter(), 0.0, {}, {}
    bar.close()
    if chief:
        if snapshot is None or weights.read_json(snapshot / "meta.json")["nimg"] != nimg:
            snapshot = _save_snapshot(trainer, run_dir, meta_now(), cfg.keep_snapshots)
        _export(trainer, meta_now(), rows, run_dir, out_dir)
    return {"kimg": nimg / 1000, "start_kimg": start_kimg, "ticks": tick, "snapshot": str(snapshot),
            "resumed_from": str(resumed_from) if resumed_from else None,
            "init_from": str(transferred_from) if transferred_from else None, "swd": last_swd}


def run(settings: dict[str, Any], dataset_dir: str | os.PathLike, run_dir: str | os.PathLike,
        out_dir: str | os.PathLike, *, init_from: str | os.PathLike | None = None, threads: int = 1,
        metrics: dict | None = None) -> dict:
    """One training job or one worker of it: the cluster found (first: it picks this
    task's GPUs), devices checked and logged, the strategy made (before any other
    TensorFlow op, as a cluster's must be), then train()."""
    cluster = cluster_resolver()
    cfg = TrainConfig.from_dict(settings)
    devices.start(threads, require_gpu=cfg.require_gpu, devices=cfg.devices, computes=None)
    strategy = make_strategy(cfg.devices, cluster)
    measure = None
    if cfg.metrics_ticks and metrics and (metrics.get("inception") or metrics.get("vgg16")):
        measure = measurer(dataset_dir, cfg.resolution, **metrics)
    elif cfg.metrics_ticks:
        log.warning("train.metrics_ticks is %d but metrics.inception and metrics.vgg16 name no file: the log "
                    "gets SWD only (README Metrics)", cfg.metrics_ticks)
    return train(cfg, dataset_stream(dataset_dir, cfg), dataset_fingerprint(dataset_dir), run_dir, out_dir,
                 init_from=init_from, strategy=strategy, measure=measure)


def launch(settings: dict[str, Any], dataset_dir: str | os.PathLike, run_dir: str | os.PathLike,
           out_dir: str | os.PathLike, *, init_from: str | os.PathLike | None = None, threads: int = 1,
           launcher: str = "srun", metrics: dict | None = None) -> None:
    """The train rule's job: run() here, or, when the settings ask for nodes x
    tasks_per_node > 1 workers, that many tasks of `python -m ganflow.train` started by
    `launcher` (srun inside the SLURM allocation) with their output in this job's log. A
    worker that dies ends them all (--kill-on-bad-exit) and the job fails; its rerun
    resumes from the newest snapshot like any other."""
    tasks = int(settings.get("nodes", 1)) * int(settings.get("tasks_per_node", 1))
    if tasks <= 1:
        run(settings, dataset_dir, run_dir, out_dir, init_from=init_from, threads=threads, metrics=metrics)
        return
    command = shlex.split(launcher)
    if not command or Path(command[0]).name != "srun" or not shutil.which(command[0]):
        raise SetupError(f"training on {tasks} tasks (train.nodes x train.tasks_per_node) starts them with srun "
                         f"inside a SLURM job, but the launcher is {launcher!r}"
                         f"{'' if shutil.which('srun') else ' and there is no srun here'}: run it through "
                         f"profiles/slurm (which sets the train rule's mpi: srun), or set nodes and "
                         f"tasks_per_node to 1 (train.devices spreads one process over local GPUs)")
    job = Path(run_dir) / "worker-job.json"
    job.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(job) as fh:
        json.dump({"settings": settings, "dataset_dir": str(dataset_dir), "run_dir": str(run_dir),
                   "out_dir": str(out_dir), "init_from": str(init_from) if init_from else None,
                   "threads": threads, "metrics": metrics}, fh)
    command += ["--ntasks", str(tasks), "--kill-on-bad-exit=1", "--label", sys.executable, "-m", "ganflow.train",
                str(job)]
    log.info("starting %d training workers: %s", tasks, shlex.join(command))
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc:
        for line in proc.stdout:
            log.info("%s", line.rstrip())
    if proc.returncode:
        raise SetupError(f"a training worker failed ({shlex.join(command)} exited with status {proc.returncode}; "
                         f"its lines are above); run the same command again: training resumes from the newest "
                         f"snapshot")


def main(argv: list[str] | None = None) -> None:
    """`python -m ganflow.train JOB.json`: one worker of a multi-task training (launch())."""
    args = argv if argv is not None else sys.argv[1:]
    if len(args) != 1:
        sys.exit("usage: python -m ganflow.train WORKER-JOB.json (written by the train rule for srun)")
    with logged(None):
        job = json.loads(Path(args[0]).read_text())
        run(job["settings"], job["dataset_dir"], job["run_dir"], job["out_dir"], init_from=job["init_from"],
            threads=job["threads"], metrics=job.get("metrics"))


if __name__ == "__main__":
    main()
