"""Train a StyleGAN2 (networks.py) on a tf.data stream of images; snapshots, resume,
transfer, per-tick logs and fakes grids, and the exported generator.

Choices the papers leave open, and why:
- Randomness comes from stateless RNG keyed by (seed, counter); the counter is saved
  in every snapshot, so a resumed run draws the numbers the killed one would have.
  Each step draws its random numbers for the whole global batch laid out as
  [accumulation, replica, micro-batch] and every replica takes its slice: k
  micro-batches on R devices then see exactly what one k*R times larger batch would.
- Gradients of k micro-batches are averaged (each is a mean over its images), never
  summed; with minibatch-stddev groups of consecutive images no larger than a
  micro-batch the update equals that of the large batch (tests prove it).
- Lazy R1 is added to the D loss every `r1_interval` D steps, scaled by the interval, in
  the same pass as the main loss; no extra optimiser step is taken, so Adam's
  hyperparameters need no lazy-regularisation correction.
- R1 is taken with respect to the images D actually sees (after augmentation), which
  needs no second derivative through the augmentation.
- kimg counts real images shown to D, as the classic StyleGAN schedule did.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import logging
import os
import re
import shutil
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import tensorflow as tf
import keras
from PIL import Image
from tensorflow.core.framework import summary_pb2
from tqdm import tqdm

from ganflow import augment as augment_lib
from ganflow import networks, samples
from ganflow import swd as swd_lib
from ganflow.tables import atomic_open, atomic_path, write_tsv

log = logging.getLogger(__name__)

W_AVG_BETA = 0.995
ADA_INTERVAL = 4
SNAPSHOT_RE = re.compile(r"^snapshot-(\d{12})$")
LOG_COLUMNS = ["kimg", "tick", "step", "seconds", "sec_per_tick", "sec_per_kimg", "images_per_sec",
               "loss_g", "loss_d", "r1", "d_real", "d_fake", "augment_p", "swd", "frame"]
ARCH_KEYS = ("resolution", "z_dim", "w_dim", "mapping_layers", "mapping_lr_mul", "channel_base",
             "channel_max", "mbstd_group")
PER_RESOLUTION_KEYS = ("batch_size", "g_lr", "d_lr")


class TrainSetupError(ValueError):
    """A broken training setup (config, dataset, run directory); the message says what to do."""


@dataclass
class TrainConfig:
    """Training settings; the defaults are the documented 512px model for real data.

    `batch_size`, `g_lr` and `d_lr` take a number or a dict keyed by resolution (the
    classic presets' per-resolution schedules); the entry for `resolution` is used.
    `batch_size` is images per optimiser step over all devices, split into
    `accum_steps` micro-batches per device. `mirror` flips reals inside the step (give
    the dataset mirror=False). With `augment`, ADA starts at `augment_p` and adapts it
    towards `ada_target` (0 keeps p fixed); p may go from 0 to 1 in `ada_kimg`.
    `ema_kimg` is the EMA generator's half-life (the classic G_smoothing_kimg).
    `devices` names tf.distribute devices; empty means all GPUs (or the CPU).
    `conv_dtype` "bfloat16" runs convolutions in bfloat16 (weights stay float32).
    `xla` compiles the gradient computation (slower on CPU: see benchmarks/).
    """

    resolution: int = 512
    z_dim: int = 512
    w_dim: int = 512
    mapping_layers: int = 8
    mapping_lr_mul: float = 0.01
    channel_base: int = 32768
    channel_max: int = 512
    mbstd_group: int = 4
    batch_size: int | dict = 32
    accum_steps: int = 1
    g_lr: float | dict = 0.002
    d_lr: float | dict = 0.002
    adam_beta1: float = 0.0
    adam_beta2: float = 0.99
    adam_eps: float = 1e-8
    r1_gamma: float = 10.0
    r1_interval: int = 16
    style_mixing: float = 0.9
    ema_kimg: float = 10.0
    d_repeats: int = 1
    mirror: bool = True
    augment: bool = True
    augment_p: float = 0.0
    ada_target: float = 0.6
    ada_kimg: float = 500.0
    total_kimg: float = 25000.0
    tick_kimg: float = 4.0
    snapshot_ticks: int = 10
    keep_snapshots: int = 3
    grid: list = field(default_factory=lambda: [6, 4])
    grid_cell_px: int = 256
    swd_images: int = 1024
    swd_patches: int = 64
    seed: int = 0
    conv_dtype: str = "float32"
    xla: bool = False
    devices: list = field(default_factory=list)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        """Build from a plain dict (the config YAML), refusing keys it does not know."""
        known = {f.name for f in dataclasses.fields(cls)}
        for key in d:
            if key not in known:
                raise TrainSetupError(f"unknown training setting {key!r}; known settings are: "
                                      f"{', '.join(sorted(known))}")
        return cls(**d)

    def __post_init__(self) -> None:
        try:
            networks.num_ws_for(self.resolution)
        except ValueError as e:
            raise TrainSetupError(f"training setting 'resolution': {e}") from e
        for key in PER_RESOLUTION_KEYS:
            value = getattr(self, key)
            if isinstance(value, dict):
                setattr(self, key, {int(k): v for k, v in value.items()})
            self.at_resolution(key)
        self.grid = list(self.grid)
        self.devices = list(self.devices)
        if len(self.grid) != 2 or min(self.grid) < 1:
            raise TrainSetupError(f"training setting 'grid' must be [columns, rows], got {self.grid}")
        if self.conv_dtype not in ("float32", "bfloat16"):
            raise TrainSetupError(f"training setting 'conv_dtype' must be float32 or bfloat16, got {self.conv_dtype!r}")
        for key in ("accum_steps", "d_repeats", "r1_interval", "snapshot_ticks", "keep_snapshots"):
            if getattr(self, key) < 1:
                raise TrainSetupError(f"training setting {key!r} must be at least 1, got {getattr(self, key)}")

    def at_resolution(self, key: str) -> Any:
        """The value of a per-resolution setting for this model's resolution."""
        value = getattr(self, key)
        if not isinstance(value, dict):
            return value
        if self.resolution not in value:
            raise TrainSetupError(f"training setting {key!r} has no entry for resolution {self.resolution} "
                                  f"(it lists {sorted(value)}); add one or give a single number")
        return value[self.resolution]

    def generator_kwargs(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ARCH_KEYS if k != "mbstd_group"}

    def discriminator_kwargs(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("resolution", "channel_base", "channel_max", "mbstd_group")}

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def dataset_fingerprint(dataset_dir: str | os.PathLike) -> str:
    """sha256 of dataset.json: it lists every shard's hash, so equal means equal data."""
    path = Path(dataset_dir) / "dataset.json"
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as e:
        raise TrainSetupError(f"cannot read {path} ({e.strerror}); build the dataset first") from e


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()


def make_strategy(devices: list[str]) -> tf.distribute.Strategy:
    """Several named devices -> MirroredStrategy; none named -> all GPUs if more than one."""
    if len(devices) > 1:
        return tf.distribute.MirroredStrategy(devices)
    if len(devices) == 1:
        return tf.distribute.OneDeviceStrategy(devices[0])
    if len(tf.config.list_logical_devices("GPU")) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


class Trainer:
    """Networks, optimisers, counters and the compiled training steps.

    Everything that a snapshot must hold is reachable from `self.checkpoint`.
    """

    def __init__(self, cfg: TrainConfig, strategy: tf.distribute.Strategy | None = None) -> None:
        self.cfg = cfg
        self.strategy = strategy or tf.distribute.get_strategy()
        self.replicas = self.strategy.num_replicas_in_sync
        self.batch = int(cfg.at_resolution("batch_size"))
        self.accum = cfg.accum_steps
        self.micro, rest = divmod(self.batch, self.accum * self.replicas)
        if rest or self.micro < 1:
            raise TrainSetupError(
                f"batch_size {self.batch} must split into accum_steps ({self.accum}) x devices "
                f"({self.replicas}) equal micro-batches; choose a multiple of {self.accum * self.replicas}")
        self.ema_beta = 0.5 ** (self.batch * cfg.d_repeats / max(cfg.ema_kimg * 1000.0, 1e-8))
        # Keras initialisers draw from its global generator: seeding it makes the initial
        # weights a function of cfg.seed (a fresh run and its test twins start equal).
        keras.utils.set_random_seed(cfg.seed)
        with self.strategy.scope():
            dtype = cfg.conv_dtype
            self.G = networks.Generator(**cfg.generator_kwargs(), conv_dtype=dtype, name="G")
            self.G_ema = networks.Generator(**cfg.generator_kwargs(), conv_dtype=dtype, name="G_ema")
            self.D = networks.Discriminator(**cfg.discriminator_kwargs(), conv_dtype=dtype, name="D")
            for e, v in zip(self.G_ema.weights, self.G.weights):
                e.assign(v)
            self.g_opt = self._adam(cfg.at_resolution("g_lr"))
            self.d_opt = self._adam(cfg.at_resolution("d_lr"))
            self.g_opt.build(self.G.trainable_variables)
            self.d_opt.build(self.D.trainable_variables)
            self.nimg = tf.Variable(0, dtype=tf.int64, trainable=False, name="nimg")
            self.d_steps = tf.Variable(0, dtype=tf.int64, trainable=False, name="d_steps")
            self.rng_counter = tf.Variable(0, dtype=tf.int64, trainable=False, name="rng_counter")
            self.augment_p = tf.Variable(cfg.augment_p if cfg.augment else 0.0, dtype=tf.float32,
                                         trainable=False, name="augment_p")
            self.ada_signs = tf.Variable(0.0, dtype=tf.float32, trainable=False, name="ada_signs")
        self.checkpoint = tf.train.Checkpoint(
            G=self.G, G_ema=self.G_ema, D=self.D, g_opt=self.g_opt, d_opt=self.d_opt, nimg=self.nimg,
            d_steps=self.d_steps, rng_counter=self.rng_counter, augment_p=self.augment_p,
            ada_signs=self.ada_signs)
        d_grads = tf.function(self.d_grads, jit_compile=cfg.xla)
        g_grads = tf.function(self.g_grads, jit_compile=cfg.xla)
        self._d_step = {r1: tf.function(partial(self._d_step_fn, d_grads, r1)) for r1 in (False, True)}
        self._g_step = tf.function(partial(self._g_step_fn, g_grads))
        self._sample_fn = tf.function(lambda z: self.G_ema(z, noise_mode="const"))

    def _adam(self, lr: float) -> keras.optimizers.Optimizer:
        return keras.optimizers.Adam(learning_rate=float(lr), beta_1=self.cfg.adam_beta1,
                                     beta_2=self.cfg.adam_beta2, epsilon=self.cfg.adam_eps)

    # ----- randomness -------------------------------------------------------------

    def _next_seed(self) -> tf.Tensor:
        seed = tf.stack([tf.constant(self.cfg.seed, tf.int64), self.rng_counter.read_value()])
        self.rng_counter.assign_add(1)
        return seed

    def draw(self, seed: tf.Tensor, replica: tf.Tensor | int) -> dict[str, Any]:
        """All random numbers of one step for this replica, each [k, micro, ...]."""
        k, r, m = self.accum, self.replicas, self.micro
        shapes = self.G.synthesis.noise_shapes
        seeds = tf.unstack(tf.random.experimental.stateless_split(seed, 10 + len(shapes)))

        def normal(i: int, *tail: int) -> tf.Tensor:
            return tf.gather(tf.random.stateless_normal([k, r, m, *tail], seeds[i]), replica, axis=1)

        def uniform(i: int, *tail: int) -> tf.Tensor:
            return tf.gather(tf.random.stateless_uniform([k, r, m, *tail], seeds[i]), replica, axis=1)

        num_ws = self.G.num_ws
        mixing = uniform(2) < self.cfg.style_mixing
        cutoff = 1 + tf.cast(tf.floor(uniform(3) * (num_ws - 1)), tf.int32)
        return {
            "z": normal(0, self.G.z_dim),
            "z2": normal(1, self.G.z_dim),
            "cutoff": tf.where(mixing, cutoff, num_ws),
            "flip": uniform(4) < 0.5,
            "aug_u": uniform(5, 2, augment_lib.NUM_UNIFORM),
            "aug_n": normal(6, 2, augment_lib.NUM_NORMAL),
            "noise": [normal(10 + i, *s) for i, s in enumerate(shapes)],
        }

    # ----- losses -------------------------------------------------------------------

    def _fakes(self, rnd: dict[str, Any]) -> tuple[tf.Tensor, tf.Tensor]:
        """Generated images with per-sample style mixing, and the unmixed w (for w_avg)."""
        G = self.G
        if self.cfg.style_mixing > 0:
            both = G.mapping(tf.concat([rnd["z"], rnd["z2"]], 0))
            ws, ws2 = tf.split(both, 2)
            layer = tf.range(G.num_ws)[None, :, None]
            mixed = tf.where(layer < rnd["cutoff"][:, None, None], ws, ws2)
        else:
            ws = mixed = G.mapping(rnd["z"])
        return G.synthesis(mixed, noise=rnd["noise"]), ws[:, 0]

    def _augment(self, images: tf.Tensor, rnd: dict[str, Any], which: int) -> tf.Tensor:
        if not self.cfg.augment:
            return images
        return augment_lib.augment(images, self.augment_p, rnd["aug_u"][:, which], rnd["aug_n"][:, which])

    def _d_micro(self, reals: tf.Tensor, rnd: dict[str, Any], r1: bool) -> tuple[list, dict]:
        fakes, _ = self._fakes(rnd)
        if self.cfg.mirror:
            reals = tf.where(rnd["flip"][:, None, None, None], tf.reverse(reals, [2]), reals)
        reals = self._augment(reals, rnd, 0)
        fakes = self._augment(tf.stop_gradient(fakes), rnd, 1)
        variables = [v.value for v in self.D.trainable_variables]
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(variables)
            fake_logits = self.D(fakes)
            if r1:
                with tf.GradientTape(watch_accessed_variables=False) as inner:
                    inner.watch(reals)
                    real_logits = self.D(reals)
                    total = tf.reduce_sum(real_logits)
                slopes = inner.gradient(total, reals)
                penalty = tf.reduce_mean(tf.reduce_sum(tf.square(slopes), axis=[1, 2, 3]))
            else:
                real_logits = self.D(reals)
                penalty = tf.constant(0.0)
            main = tf.reduce_mean(tf.nn.softplus(fake_logits)) + tf.reduce_mean(tf.nn.softplus(-real_logits))
            loss = main + penalty * (self.cfg.r1_gamma / 2 * self.cfg.r1_interval)
        stats = {"loss_d": main, "r1": penalty, "d_real": tf.reduce_mean(real_logits),
                 "d_fake": tf.reduce_mean(fake_logits), "sign_real": tf.reduce_mean(tf.sign(real_logits))}
        return tape.gradient(loss, variables), stats

    def _g_micro(self, rnd: dict[str, Any]) -> tuple[list, dict]:
        variables = [v.value for v in self.G.trainable_variables]
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(variables)
            fakes, w = self._fakes(rnd)
            logits = self.D(self._augment(fakes, rnd, 1))
            loss = tf.reduce_mean(tf.nn.softplus(-logits))
        return tape.gradient(loss, variables), {"loss_g": loss, "w_mean": tf.reduce_mean(w, axis=0)}

    def _accumulate(self, micro_fn, reals: tf.Tensor | None, seed: tf.Tensor,
                    replica: tf.Tensor | int) -> tuple[list, dict]:
        """Mean gradients and stats over k micro-batches, each with its own images and
        random numbers (a sum would scale the step with k)."""
        rnd = self.draw(seed, replica)
        if reals is not None:
            reals = tf.reshape(reals, [self.accum, self.micro, *reals.shape[1:]])

        def one(i: tf.Tensor) -> tuple[list, dict]:
            sub = tf.nest.map_structure(lambda t: t[i], rnd)
            return micro_fn(sub) if reals is None else micro_fn(reals[i], sub)

        def body(i: tf.Tensor, grads: list, stats: dict) -> tuple:
            g, s = one(i)
            return i + 1, [a + b for a, b in zip(grads, g)], {key: stats[key] + s[key] for key in stats}

        grads, stats = one(0)
        if self.accum > 1:
            # One micro-batch at a time (parallel_iterations=1) so that memory stays that
            # of a micro-batch. No loop at all for k=1: grappler's rewrite of add chains
            # leaks a temporary variable in a loop that runs zero times (TF 2.21).
            _, grads, stats = tf.while_loop(lambda i, *_: i < self.accum, body, (tf.constant(1), grads, stats),
                                            parallel_iterations=1)
        inv = 1.0 / self.accum
        return [g * inv for g in grads], {key: v * inv for key, v in stats.items()}

    def d_grads(self, reals: tf.Tensor, seed: tf.Tensor, replica: tf.Tensor | int = 0,
                r1: bool = False) -> tuple[list, dict]:
        """D's gradients for one step on this replica's reals [k * micro, H, W, 3]."""
        return self._accumulate(partial(self._d_micro, r1=r1), reals, seed, replica)

    def g_grads(self, seed: tf.Tensor, replica: tf.Tensor | int = 0) -> tuple[list, dict]:
        """G's gradients for one step on this replica."""
        return self._accumulate(self._g_micro, None, seed, replica)

    # ----- steps ----------------------------------------------------------------------

    def _apply(self, opt: keras.optimizers.Optimizer, grads: list, variables: list) -> None:
        # Keras sums gradients over replicas; each replica holds a mean, so divide.
        opt.apply_gradients(zip([g / self.replicas for g in grads], variables))

    def _d_step_fn(self, grad_fn, r1: bool, reals) -> dict:
        seed = self._next_seed()

        def replica(x: tf.Tensor) -> dict:
            rid = tf.distribute.get_replica_context().replica_id_in_sync_group
            grads, stats = grad_fn(x, seed, rid, r1)
            self._apply(self.d_opt, grads, self.D.trainable_variables)
            return stats

        stats = self.strategy.run(replica, args=(reals,))
        self.nimg.assign_add(self.batch)
        self.d_steps.assign_add(1)
        return {k: self.strategy.reduce("MEAN", v, axis=None) for k, v in stats.items()}

    def _g_step_fn(self, grad_fn) -> dict:
        seed = self._next_seed()

        def replica() -> dict:
            rid = tf.distribute.get_replica_context().replica_id_in_sync_group
            grads, stats = grad_fn(seed, rid)
            self._apply(self.g_opt, grads, self.G.trainable_variables)
            return stats

        stats = self.strategy.run(replica)
        stats = {k: self.strategy.reduce("MEAN", v, axis=None) for k, v in stats.items()}
        w_avg = self.G.mapping.w_avg
        w_avg.assign(w_avg * W_AVG_BETA + stats.pop("w_mean") * (1 - W_AVG_BETA))
        beta = self.ema_beta
        for e, v in zip(self.G_ema.trainable_variables, self.G.trainable_variables):
            self.strategy.extended.update(e.value, lambda a, b: a.assign(b + (a - b) * beta), args=(v.value,),
                                          group=False)
        self.G_ema.mapping.w_avg.assign(w_avg)
        return stats

    def train_step(self, batches: Iterator) -> dict[str, float]:
        """d_repeats D steps (each on fresh reals) then one G step; returns the stats."""
        out: dict[str, float] = {}
        for _ in range(self.cfg.d_repeats):
            r1 = int(self.d_steps.numpy()) % self.cfg.r1_interval == 0
            stats = {k: float(v) for k, v in self._d_step[r1](next(batches)).items()}
            self._adapt_augment(stats.pop("sign_real"))
            penalty = stats.pop("r1")
            if r1:
                out["r1"] = penalty
            out.update(stats)
        out.update({k: float(v) for k, v in self._g_step().items()})
        out["augment_p"] = float(self.augment_p.numpy())
        return out

    def _adapt_augment(self, sign_real: float) -> None:
        """ADA: every few D steps move p so that E[sign(D(real))], D's overfitting
        heuristic, tracks the target; the running sum is checkpointed with p."""
        if not self.cfg.augment or self.cfg.ada_target <= 0:
            return
        self.ada_signs.assign_add(sign_real)
        if int(self.d_steps.numpy()) % ADA_INTERVAL:
            return
        rt = float(self.ada_signs.numpy()) / ADA_INTERVAL
        self.ada_signs.assign(0.0)
        step = np.sign(rt - self.cfg.ada_target) * self.batch * ADA_INTERVAL / (self.cfg.ada_kimg * 1000)
        self.augment_p.assign(float(np.clip(self.augment_p.numpy() + step, 0.0, 1.0)))

    def sample(self, z: np.ndarray, chunk: int = 16) -> np.ndarray:
        """G_ema images for latents z with the saved constant noise (reproducible)."""
        out = []
        for i in range(0, len(z), chunk):
            part = z[i:i + chunk]
            padded = np.concatenate([part, np.zeros((chunk - len(part), z.shape[1]), np.float32)])
            out.append(self._sample_fn(tf.constant(padded)).numpy()[:len(part)])
        return np.concatenate(out)

    # ----- snapshots --------------------------------------------------------------------

    def restore(self, prefix: str) -> None:
        self.checkpoint.read(prefix).assert_consumed()

    def load_networks(self, source: Path) -> None:
        """Weights only (G, G_ema, D) from a snapshot or an export, for transfer learning."""
        if (source / "generator").is_dir():
            tf.train.Checkpoint(generator=self.G_ema).read(str(source / "generator" / "weights")).assert_consumed()
            tf.train.Checkpoint(discriminator=self.D).read(
                str(source / "discriminator" / "weights")).assert_consumed()
            for g, e in zip(self.G.weights, self.G_ema.weights):
                g.assign(e)
        else:
            status = tf.train.Checkpoint(G=self.G, G_ema=self.G_ema, D=self.D).read(str(source / "ckpt"))
            status.expect_partial().assert_existing_objects_matched()


# ----- run directory: snapshots, log, frames --------------------------------------------


def _snapshots(run_dir: Path) -> list[Path]:
    """Complete snapshots, oldest first. One is written under a temporary name and only
    renamed once its meta.json is on disk, so a killed write is never picked up."""
    root = run_dir / "snapshots"
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if SNAPSHOT_RE.match(p.name) and (p / "meta.json").is_file())


def _fsync_tree(path: Path) -> None:
    for f in path.iterdir():
        with open(f, "rb") as fh:
            os.fsync(fh.fileno())


def _save_snapshot(trainer: Trainer, run_dir: Path, meta: dict, keep: int) -> Path:
    root = run_dir / "snapshots"
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"snapshot-{meta['nimg']:012d}"
    tmp = root / f".partial-{meta['nimg']:012d}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    trainer.checkpoint.write(str(tmp / "ckpt"))
    (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
    _fsync_tree(tmp)
    if final.exists():
        shutil.rmtree(final)
    os.rename(tmp, final)
    for old in _snapshots(run_dir)[:-max(keep, 1)]:
        shutil.rmtree(old)
    return final


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise TrainSetupError(f"cannot read {path} ({e}); it is not a ganflow training artifact") from e


def _architecture(cfg: TrainConfig) -> dict[str, Any]:
    return {k: getattr(cfg, k) for k in ARCH_KEYS}


def _architecture_changes(saved: dict[str, Any], cfg: TrainConfig) -> list[str]:
    return [f"{k} {saved.get(k)} -> {v}" for k, v in _architecture(cfg).items() if saved.get(k) != v]


def _check_resume(meta: dict, cfg: TrainConfig, fingerprint: str, snapshot: Path, run_dir: Path) -> list[str]:
    """Refuse a snapshot of another architecture or dataset; list other changed settings."""
    arch = _architecture_changes(meta["architecture"], cfg)
    if arch:
        raise TrainSetupError(
            f"cannot resume from {snapshot}: it has a different architecture ({', '.join(arch)}); "
            f"delete {run_dir} to start afresh, or keep the old settings")
    if meta["dataset_fingerprint"] != fingerprint:
        raise TrainSetupError(
            f"cannot resume from {snapshot}: it was trained on a different dataset (fingerprint "
            f"{meta['dataset_fingerprint'][:12]} -> {fingerprint[:12]}); delete {run_dir} to start afresh, "
            f"or train in a new run directory with init_from={run_dir} to fine-tune on the new data")
    now = json.loads(json.dumps(cfg.to_dict()))  # as stored: resolution keys become strings
    return [f"{k} {v!r} -> {now.get(k)!r}" for k, v in meta["config"].items() if now.get(k) != v]


def _transfer_source(path: Path) -> tuple[Path, dict[str, Any]]:
    """init_from may name a run directory (newest snapshot), a snapshot, or an export."""
    if (path / "generator" / "generator.json").is_file():
        arch = {**_read_json(path / "discriminator" / "discriminator.json")["architecture"],
                **_read_json(path / "generator" / "generator.json")["architecture"]}
        return path, arch
    if (path / "meta.json").is_file():
        return path, _read_json(path / "meta.json")["architecture"]
    snaps = _snapshots(path)
    if not snaps:
        raise TrainSetupError(f"init_from={path} holds no snapshot or exported generator; point it at a "
                              f"finished run's directory, one of its snapshots, or its export directory")
    return snaps[-1], _read_json(snaps[-1] / "meta.json")["architecture"]


def _read_log(path: Path) -> list[dict[str, str]]:
    """Rows of a per-tick log; a line cut short by a kill is dropped (it is re-made)."""
    if not path.is_file():
        return []
    with open(path, encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    good = []
    for row in rows:
        try:
            float(row["kimg"])
        except (TypeError, ValueError, KeyError):
            continue
        if None not in row.values() and len(row) == len(LOG_COLUMNS):
            good.append(row)
    return good


def _write_log(path: Path, rows: list[dict]) -> None:
    with atomic_open(path) as fh:
        writer = csv.DictWriter(fh, LOG_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def _append_log(path: Path, row: dict) -> None:
    with open(path, "a", encoding="utf-8", newline="") as fh:
        csv.DictWriter(fh, LOG_COLUMNS, lineterminator="\n").writerow(row)
        fh.flush()
        os.fsync(fh.fileno())


def _save_grid(images: np.ndarray, cols: int, rows: int, cell_px: int, path: Path) -> None:
    u8 = networks.to_uint8(images)
    _, h, w, _ = u8.shape
    img = Image.fromarray(samples.tile(u8, cols))
    if h > cell_px:
        img = img.resize((cols * cell_px, rows * round(cell_px * h / w)), Image.LANCZOS)
    with atomic_path(path) as tmp:
        img.save(tmp, format="PNG")


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
        raise TrainSetupError(f"the training dataset must yield image tensors [H, W, 3] or batches "
                              f"[N, H, W, 3]; it yields {spec}")
    if spec.shape.rank == 4:
        dataset = dataset.unbatch()
        spec = dataset.element_spec
    if not spec.shape.is_compatible_with([resolution, resolution, 3]) or spec.dtype != tf.float32:
        raise TrainSetupError(f"the training dataset yields {spec.dtype.name} images of shape {spec.shape} but "
                              f"the model needs float32 [{resolution}, {resolution}, 3]; rebuild the "
                              f"dataset at that resolution or change `resolution`")
    return dataset


def _step_batches(images: tf.data.Dataset, trainer: Trainer) -> Iterator:
    """Batches of one D step, arranged so replica r receives its [k, micro] block."""
    k, r, m = trainer.accum, trainer.replicas, trainer.micro
    ds = images.repeat().batch(trainer.batch, drop_remainder=True)
    if r > 1 and k > 1:
        def arrange(x: tf.Tensor) -> tf.Tensor:
            x = tf.reshape(x, [k, r, m, *x.shape[1:]])
            return tf.reshape(tf.transpose(x, [1, 0, 2, 3, 4, 5]), [k * r * m, *x.shape[3:]])
        ds = ds.map(arrange)
    return iter(trainer.strategy.experimental_distribute_dataset(ds.prefetch(tf.data.AUTOTUNE)))


def _swd_reference(images: tf.data.Dataset, cfg: TrainConfig) -> list[np.ndarray]:
    batches = (b.numpy() for b in images.take(cfg.swd_images).batch(64))
    return swd_lib.descriptors_from_batches(batches, cfg.swd_patches, seed=cfg.seed)


def _swd_now(trainer: Trainer, reference: list[np.ndarray], cfg: TrainConfig) -> dict[str, float]:
    n = sum(len(d) for d in reference[:1]) // cfg.swd_patches
    z = np.random.default_rng(cfg.seed + 1).standard_normal((n, cfg.z_dim)).astype(np.float32)
    batches = (trainer.sample(z[i:i + 64]) for i in range(0, n, 64))
    fake = swd_lib.descriptors_from_batches(batches, cfg.swd_patches, seed=cfg.seed + 1)
    return swd_lib.swd(reference, fake, seed=cfg.seed)


def _write_weights(directory: Path, key: str, obj: keras.layers.Layer, info: dict) -> None:
    """Export one network as a tf.train.Checkpoint plus JSON, swapped in as a whole."""
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = directory.parent / f".{directory.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tf.train.Checkpoint(**{key: obj}).write(str(tmp / "weights"))
    (tmp / f"{key}.json").write_text(json.dumps(info, indent=1))
    _fsync_tree(tmp)
    if directory.exists():
        shutil.rmtree(directory)
    os.rename(tmp, directory)


def _export(trainer: Trainer, meta: dict, rows: list[dict], run_dir: Path, out_dir: Path) -> None:
    common = {k: meta[k] for k in ("nimg", "kimg", "dataset_fingerprint", "config")}
    g_arch = trainer.cfg.generator_kwargs()
    _write_weights(out_dir / "generator", "generator", trainer.G_ema,
                   {**common, "architecture": g_arch, "num_ws": trainer.G.num_ws,
                    "ws_resolutions": networks.ws_resolutions(trainer.cfg.resolution),
                    "style_groups": networks.style_groups(trainer.cfg.resolution)})
    _write_weights(out_dir / "discriminator", "discriminator", trainer.D,
                   {**common, "architecture": trainer.cfg.discriminator_kwargs()})
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
    _write_log(out_dir / "log.csv", rows)


def load_export(out_dir: str | os.PathLike, conv_dtype: str = "float32"
                ) -> tuple[networks.Generator, networks.Discriminator, dict]:
    """The exported EMA generator, the discriminator, and the generator's info JSON."""
    out_dir = Path(out_dir)
    nets = []
    for key, cls in (("generator", networks.Generator), ("discriminator", networks.Discriminator)):
        info_path = out_dir / key / f"{key}.json"
        if not info_path.is_file():
            raise TrainSetupError(f"no exported {key} in {out_dir} ({info_path} is missing); run training first")
        info = _read_json(info_path)
        net = cls(**info["architecture"], conv_dtype=conv_dtype)
        tf.train.Checkpoint(**{key: net}).read(str(out_dir / key / "weights")).assert_consumed()
        nets.append((net, info))
    (G, info), (D, _) = nets
    return G, D, info


# ----- the training run -------------------------------------------------------------------


def train(cfg: TrainConfig, dataset: tf.data.Dataset, dataset_fingerprint: str, run_dir: str | os.PathLike,
          out_dir: str | os.PathLike, *, init_from: str | os.PathLike | None = None) -> dict[str, Any]:
    """Train until total_kimg, resuming from run_dir's newest snapshot if there is one.

    run_dir (snapshots, running log, frames, TensorBoard) must lie outside the rule's
    declared outputs; out_dir receives the exports. init_from only applies to a fresh
    run: a resumed run continues its own weights.
    """
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    images = _image_stream(dataset, cfg.resolution)
    trainer = Trainer(cfg, make_strategy(cfg.devices))
    for partial_dir in (run_dir / "snapshots").glob(".partial-*"):
        shutil.rmtree(partial_dir, ignore_errors=True)
    log_path, frames_dir = run_dir / "log.csv", run_dir / "frames"
    snaps = _snapshots(run_dir)
    resumed_from = transferred_from = None
    if snaps:
        meta = _read_json(snaps[-1] / "meta.json")
        changes = _check_resume(meta, cfg, dataset_fingerprint, snaps[-1], run_dir)
        trainer.restore(str(snaps[-1] / "ckpt"))
        trainer.g_opt.learning_rate = float(cfg.at_resolution("g_lr"))
        trainer.d_opt.learning_rate = float(cfg.at_resolution("d_lr"))
        resumed_from = snaps[-1]
        log.info("resuming %s at kimg %.3f%s", run_dir, meta["kimg"],
                 f" with changed settings: {'; '.join(changes)}" if changes else "")
        if init_from is not None:
            log.info("init_from=%s ignored: %s continues its own snapshot", init_from, run_dir)
        rows = [r for r in _read_log(log_path) if float(r["kimg"]) <= meta["kimg"] + 1e-9]
    else:
        rows = []
        shutil.rmtree(frames_dir, ignore_errors=True)
        if init_from is not None:
            source, arch = _transfer_source(Path(init_from))
            changed = _architecture_changes(arch, cfg)
            if changed:
                raise TrainSetupError(f"cannot initialise from {source}: its architecture differs "
                                      f"({', '.join(changed)}); transfer needs identical networks")
            trainer.load_networks(source)
            transferred_from = source
            log.info("initialised %s from %s", run_dir, source)
    _write_log(log_path, rows)
    for stale in frames_dir.glob("*.png") if frames_dir.is_dir() else []:
        if stale.name not in {r["frame"] for r in rows}:
            stale.unlink()

    batches = _step_batches(images, trainer)
    reference = _swd_reference(images, cfg)
    cols, grid_rows = cfg.grid
    grid_z = np.random.default_rng(cfg.seed).standard_normal((cols * grid_rows, cfg.z_dim)).astype(np.float32)
    writer = tf.summary.create_file_writer(str(run_dir / "tensorboard"))
    total_nimg = int(round(cfg.total_kimg * 1000))
    nimg = int(trainer.nimg.numpy())
    seconds = float(rows[-1]["seconds"]) if rows else 0.0
    tick = int(rows[-1]["tick"]) if rows else 0
    start_kimg = nimg / 1000
    last_swd = None

    def meta_now() -> dict:
        return {"nimg": nimg, "kimg": nimg / 1000, "d_steps": int(trainer.d_steps.numpy()),
                "dataset_fingerprint": dataset_fingerprint, "architecture": _architecture(cfg),
                "architecture_fingerprint": _digest(_architecture(cfg)), "config": cfg.to_dict(),
                "config_fingerprint": _digest(cfg.to_dict()), "written": time.strftime("%Y-%m-%dT%H:%M:%S")}

    def finish_tick(stats: dict[str, float], step_seconds: float, tick_imgs: int, tick_begun: float,
                    with_swd: bool) -> dict:
        nonlocal last_swd
        frame = _frame_name(nimg)
        _save_grid(trainer.sample(grid_z), cols, grid_rows, cfg.grid_cell_px, frames_dir / frame)
        scores = _swd_now(trainer, reference, cfg) if with_swd else {}
        if scores:
            last_swd = scores["swd"]
        row = {"kimg": f"{nimg / 1000:.3f}", "tick": tick, "step": int(trainer.d_steps.numpy()) // cfg.d_repeats,
               "seconds": f"{seconds:.2f}", "sec_per_tick": f"{time.perf_counter() - tick_begun:.2f}",
               "sec_per_kimg": f"{step_seconds / (tick_imgs / 1000):.3f}" if tick_imgs else "",
               "images_per_sec": f"{tick_imgs / step_seconds:.2f}" if tick_imgs else "",
               "augment_p": f"{float(trainer.augment_p.numpy()):.4f}",
               "swd": f"{scores['swd']:.4f}" if scores else "", "frame": frame}
        for key in ("loss_g", "loss_d", "r1", "d_real", "d_fake"):
            row[key] = f"{stats[key]:.5f}" if key in stats else ""
        _append_log(log_path, row)
        scalars = {**stats, **scores}
        if row["sec_per_kimg"]:
            scalars["sec_per_kimg"] = float(row["sec_per_kimg"])
        _tensorboard(writer, nimg, scalars, frames_dir / frame)
        rows.append(row)
        return row

    if not rows:
        finish_tick({}, 0.0, 0, time.perf_counter(), with_swd=True)
    snapshot = snaps[-1] if snaps else None
    bar = tqdm(total=cfg.total_kimg, initial=round(nimg / 1000, 3), unit="kimg", dynamic_ncols=True,
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
            if snapshot_due:
                snapshot = _save_snapshot(trainer, run_dir, meta_now(), cfg.keep_snapshots)
            tick_nimg, tick_begun, step_seconds, sums, counts = nimg, time.perf_counter(), 0.0, {}, {}
    bar.close()
    if snapshot is None or _read_json(snapshot / "meta.json")["nimg"] != nimg:
        snapshot = _save_snapshot(trainer, run_dir, meta_now(), cfg.keep_snapshots)
    _export(trainer, meta_now(), rows, run_dir, out_dir)
    return {"kimg": nimg / 1000, "start_kimg": start_kimg, "ticks": tick, "snapshot": str(snapshot),
            "resumed_from": str(resumed_from) if resumed_from else None,
            "init_from": str(transferred_from) if transferred_from else None, "swd": last_swd}
