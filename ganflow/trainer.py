"""The StyleGAN2 update: networks, optimisers, counters and the compiled training phases.

Apart from the loop (train.py) that runs it, writes snapshots and logs, so that the
maths of one step can be read, benchmarked and tested on its own.

One iteration is the official training loop's: phases Gmain (non-saturating loss), Greg
(path length, every `pl_interval` G steps), Dmain (logistic loss) and Dreg (R1, every
`r1_interval` D steps; on the same reals as Dmain), each with its own random numbers
and its own Adam step, then the EMA of G and the ADA update. Each optimiser's learning
rate is x c and its betas ^ c (c = interval / (interval + 1)), since its regularisation
pass takes a step of its own; the regularisation losses are x interval. The mapping
network's w_avg moves (beta 0.995) after every phase that maps latents (Gmain, Greg,
Dmain), towards the mean w of that phase's batch; G_ema takes it, and every other
buffer, as it is. tests/test_losses.py checks one iteration against the official code.

Choices the papers leave open, and why:
- Randomness comes from stateless RNG keyed by (seed, counter); the counter is saved
  in every snapshot, so a resumed run draws the numbers the killed one would have.
  Each phase draws its random numbers for the whole global batch laid out as
  [accumulation, replica, micro-batch] and every replica takes its slice: k
  micro-batches on R devices then see exactly what one k*R times larger batch would.
  What depends on the batch as a whole is taken over the whole global batch: the style
  mixing cutoff (one per phase; upstream draws one per GPU and round, which is the same
  for one round on one GPU), the augmentation's pad margin, and the path-length running
  mean (upstream keeps one per GPU, moved once per round).
- Gradients of k micro-batches are averaged (each is a mean over its images), never
  summed; with minibatch-stddev groups of consecutive images no larger than a
  micro-batch the update equals that of the large batch (tests prove it). Upstream sums
  its rounds, which Adam cannot tell from the mean but for epsilon.
- The path-length penalty couples the images of a batch through its mean; split over
  micro-batches or devices, a first pass measures the lengths of the whole batch and the
  second takes the gradient with that mean as a constant (losses.pl_penalty_split), so
  the split equals the whole batch at the cost of one more forward-backward pass.
- kimg counts real images shown to D, as the classic StyleGAN schedule did.
"""

from __future__ import annotations

import json
import math
import os
import time
from functools import partial
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np
import tensorflow as tf
import keras
from keras import ops

from . import augment as augment_lib
from . import losses, networks, weights
from .runlog import SetupError
from .train_config import TrainConfig

W_AVG_BETA = 0.995
# Dynamic loss scaling for float16, in log2 units: up by 2^0.0005 after each finite step,
# halved (and the step skipped) when a gradient overflows, as the official TensorFlow
# StyleGAN2's optimizer does; it starts at 2^64 and skips its first few dozen steps
# finding the scale, this at 2^6, where the gradients of losses of order one neither
# overflow float16 nor vanish in it.
LOSS_SCALE_LOG2 = (6.0, 0.0005, 1.0)
ADA_INTERVAL = 4
PHASES = ("Gmain", "Greg", "Dmain", "Dreg")
_AUGMENTED = {"Gmain": ("fake",), "Greg": (), "Dmain": ("fake", "real"), "Dreg": ("real",)}


def cluster_resolver(env: Mapping[str, str] = os.environ) -> tf.distribute.cluster_resolver.ClusterResolver | None:
    """The workers of a training spread over processes (None: this process alone).

    TF_CONFIG naming several tasks (any launcher; the tests start local processes), or a
    SLURM job step of several tasks (`srun`, one task per GPU): SlurmClusterResolver reads
    its nodes and ranks. Its ports start at 20000 + the job id mod 20000, so that two jobs
    sharing a node do not collide. It gives each task its share of the node's GPUs through
    CUDA_VISIBLE_DEVICES, unless SLURM already bound one GPU to each task; tasks without
    GPUs of their own (more tasks than GPUs, or none: CPU tests) keep the environment's.
    """
    if "TF_CONFIG" in env:
        cluster = json.loads(env["TF_CONFIG"]).get("cluster", {})
        if sum(len(tasks) for tasks in cluster.values()) > 1:
            return tf.distribute.cluster_resolver.TFConfigClusterResolver()
        return None
    if int(env.get("SLURM_STEP_NUM_TASKS", "1")) <= 1:
        return None
    gpus = int(env.get("SLURM_GPUS_ON_NODE") or 0)
    tasks = max(int(part.split("(")[0]) for part in env.get("SLURM_STEP_TASKS_PER_NODE", "1").split(","))
    visible = [d for d in env.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
    if gpus >= tasks:
        placement = dict(gpus_per_node=gpus, auto_set_gpu=len(visible) != 1)
    else:  # one slot per task and no GPU assignment (the resolver needs as many slots as tasks)
        placement = dict(gpus_per_node=tasks, gpus_per_task=1, auto_set_gpu=False)
    resolver = tf.distribute.cluster_resolver.SlurmClusterResolver(
        port_base=20000 + int(env.get("SLURM_JOB_ID", "0")) % 20000, **placement)
    resolver.cluster_spec()  # resolves now: sets CUDA_VISIBLE_DEVICES before TensorFlow lists GPUs
    return resolver


def make_strategy(devices: list[str], cluster: tf.distribute.cluster_resolver.ClusterResolver | None = None
                  ) -> tf.distribute.Strategy:
    """Workers of a cluster -> MultiWorkerMirroredStrategy (create it before any other
    TensorFlow op); several named devices -> MirroredStrategy; none named -> all GPUs if
    more than one."""
    if cluster is not None:
        return tf.distribute.MultiWorkerMirroredStrategy(cluster_resolver=cluster)
    if len(devices) > 1:
        return tf.distribute.MirroredStrategy(devices)
    if len(devices) == 1:
        return tf.distribute.OneDeviceStrategy(devices[0])
    if len(tf.config.list_logical_devices("GPU")) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes the run's files: the chief (worker 0) of a cluster, the
    one process otherwise."""
    return bool(strategy.extended.should_checkpoint)


class Adam(keras.optimizers.Adam):
    """Adam as torch.optim.Adam (and so the official code) computes it: epsilon added to
    the bias-corrected sqrt(v), lr / (1 - beta1^t) on m. Keras adds epsilon to the
    uncorrected sqrt(v), a different step wherever |gradient| is near epsilon.

    With `skip_nonfinite` a variable whose gradient holds inf or NaN keeps its value and
    moments: the loss-scaled float16 step sends all-NaN gradients to skip a whole step.
    """

    skip_nonfinite = False

    def update_step(self, gradient, variable, learning_rate):
        dtype = variable.dtype
        lr = ops.cast(learning_rate, dtype)
        gradient = ops.cast(gradient, dtype)
        step = ops.cast(self.iterations + 1, dtype)
        beta_1, beta_2 = ops.cast(self.beta_1, dtype), ops.cast(self.beta_2, dtype)
        index = self._get_variable_index(variable)
        m, v = self._momentums[index], self._velocities[index]
        new_m = ops.add(m, ops.multiply(ops.subtract(gradient, m), 1 - beta_1))
        new_v = ops.add(ops.multiply(v, beta_2), ops.multiply(ops.square(gradient), 1 - beta_2))
        denom = ops.add(ops.divide(ops.sqrt(new_v), ops.sqrt(1 - ops.power(beta_2, step))), self.epsilon)
        new = ops.subtract(variable, ops.multiply(ops.divide(lr, 1 - ops.power(beta_1, step)),
                                                  ops.divide(new_m, denom)))
        if self.skip_nonfinite:
            ok = ops.all(ops.isfinite(gradient))
            new_m, new_v, new = (ops.where(ok, a, b) for a, b in ((new_m, m), (new_v, v), (new, variable)))
        self.assign(m, new_m)
        self.assign(v, new_v)
        self.assign(variable, new)


def _clean(grad: tf.Tensor) -> tf.Tensor:
    """NaN -> 0, +-inf -> +-1e5 (torch.nan_to_num as the official loop applies it)."""
    grad = tf.where(tf.math.is_nan(grad), tf.zeros_like(grad), grad)
    return tf.where(tf.math.is_inf(grad), tf.sign(grad) * 1e5, grad)


class Trainer:
    """Networks, optimisers, counters and the compiled training phases.

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
            raise SetupError(
                f"batch_size {self.batch} must split into accum_steps ({self.accum}) x devices "
                f"({self.replicas}) equal micro-batches; choose a multiple of {self.accum * self.replicas}")
        # The path-length pass takes the first micro / pl_batch_shrink images of each
        # micro-batch's own latents, as upstream does of each round's.
        self.pl_micro = max(1, self.micro // cfg.pl_batch_shrink)
        # Lazy regularisation: each optimiser also steps in its regulariser's passes.
        self.lazy_c = {"G": cfg.pl_interval / (cfg.pl_interval + 1), "D": cfg.r1_interval / (cfg.r1_interval + 1)}
        # Keras initialisers draw from its global generator: seeding it makes the initial
        # weights a function of cfg.seed (a fresh run and its test twins start equal).
        keras.utils.set_random_seed(cfg.seed)
        with self.strategy.scope():
            self.G = networks.Generator(**cfg.generator_kwargs(), name="G")
            self.G_ema = networks.Generator(**cfg.generator_kwargs(), name="G_ema")
            self.D = networks.Discriminator(**cfg.discriminator_kwargs(), name="D")
            self.frozen_d = self.D.freeze(cfg.freeze_d)
            for e, v in zip(self.G_ema.weights, self.G.weights):
                e.assign(v)
            self.g_opt = self._adam("G")
            self.d_opt = self._adam("D")
            # float16 only: the log2 loss scale of each network's gradients.
            self.fp16 = cfg.conv_dtype == "float16"
            self.loss_scale = {net: tf.Variable(LOSS_SCALE_LOG2[0], dtype=tf.float32, trainable=False,
                                                name=f"loss_scale_{net}") for net in ("G", "D")} if self.fp16 else {}
            self.g_opt.build(self.G.trainable_variables)
            self.d_opt.build(self.D.trainable_variables)
            self.nimg = tf.Variable(0, dtype=tf.int64, trainable=False, name="nimg")
            self.d_steps = tf.Variable(0, dtype=tf.int64, trainable=False, name="d_steps")
            self.g_steps = tf.Variable(0, dtype=tf.int64, trainable=False, name="g_steps")
            self.rng_counter = tf.Variable(0, dtype=tf.int64, trainable=False, name="rng_counter")
            self.augment_p = tf.Variable(cfg.augment_p if cfg.augment else 0.0, dtype=tf.float32,
                                         trainable=False, name="augment_p")
            # ADA's running sum of sign(D(real)) and how many logits it holds.
            self.ada_signs = tf.Variable(0.0, dtype=tf.float32, trainable=False, name="ada_signs")
            self.ada_count = tf.Variable(0.0, dtype=tf.float32, trainable=False, name="ada_count")
            self.pl_mean = tf.Variable(0.0, dtype=tf.float32, trainable=False, name="pl_mean")
        self.checkpoint = tf.train.Checkpoint(
            G=self.G, G_ema=self.G_ema, D=self.D, g_opt=self.g_opt, d_opt=self.d_opt, nimg=self.nimg,
            d_steps=self.d_steps, g_steps=self.g_steps, rng_counter=self.rng_counter, augment_p=self.augment_p,
            ada_signs=self.ada_signs, ada_count=self.ada_count, pl_mean=self.pl_mean,
            **{f"loss_scale_{net}": v for net, v in self.loss_scale.items()})
        self._grads = {phase: tf.function(partial(self.grads, phase), jit_compile=cfg.xla) for phase in PHASES}
        self._pl_lengths = tf.function(self.pl_lengths_mean, jit_compile=cfg.xla)
        self._g_step = {reg: tf.function(partial(self._g_step_fn, reg)) for reg in (False, True)}
        self._d_step = {reg: tf.function(partial(self._d_step_fn, reg)) for reg in (False, True)}
        self._ema_step = tf.function(self._ema_fn)
        self._sample_fn = tf.function(lambda z: self.G_ema(z, noise_mode="const"))

    def _adam(self, net: str) -> keras.optimizers.Optimizer:
        cfg, c = self.cfg, self.lazy_c[net]
        lr = cfg.at_resolution("g_lr" if net == "G" else "d_lr")
        opt = Adam(learning_rate=float(lr) * c, beta_1=cfg.adam_beta1 ** c, beta_2=cfg.adam_beta2 ** c,
                   epsilon=cfg.adam_eps)
        opt.skip_nonfinite = cfg.conv_dtype == "float16"
        return opt

    def set_learning_rates(self) -> None:
        """The configured learning rates (x c), e.g. after restoring a snapshot saved under others."""
        for opt, net, key in ((self.g_opt, "G", "g_lr"), (self.d_opt, "D", "d_lr")):
            opt.learning_rate = float(self.cfg.at_resolution(key)) * self.lazy_c[net]

    # ----- randomness -------------------------------------------------------------

    def _next_seed(self) -> tf.Tensor:
        seed = tf.stack([tf.constant(self.cfg.seed, tf.int64), self.rng_counter.read_value()])
        self.rng_counter.assign_add(1)
        return seed

    def draw(self, phase: str, seed: tf.Tensor, replica: tf.Tensor | int) -> tuple[dict, dict]:
        """A phase's random numbers: (per-image ones for this replica, each [k, micro, ...];
        those shared by the whole global batch: mixing cutoff, augmentation p and margins)."""
        k, r = self.accum, self.replicas
        m = self.pl_micro if phase == "Greg" else self.micro
        shapes = self.G.synthesis.noise_shapes
        seeds = tf.unstack(tf.random.experimental.stateless_split(seed, 16 + len(shapes)))
        per: dict[str, Any] = {}
        shared: dict[str, Any] = {}

        def normal(i: int, *tail: int) -> tf.Tensor:
            return tf.random.stateless_normal([k, r, m, *tail], seeds[i])

        def uniform(i: int, *tail: int) -> tf.Tensor:
            return tf.random.stateless_uniform([k, r, m, *tail], seeds[i])

        def mine(full: tf.Tensor) -> tf.Tensor:
            return tf.gather(full, replica, axis=1)

        if phase != "Dreg":
            per["z"], per["z2"] = mine(normal(0, self.G.z_dim)), mine(normal(1, self.G.z_dim))
            per["noise"] = [mine(normal(16 + i, *s)) for i, s in enumerate(shapes)]
            # One mixing decision for the whole batch: cutoff in [1, num_ws - 1] with
            # probability style_mixing, else num_ws (no mixing).
            mix_u, cut_u = tf.unstack(tf.random.stateless_uniform([2], seeds[2]))
            num_ws = self.G.num_ws
            cutoff = 1 + tf.cast(tf.floor(cut_u * (num_ws - 1)), tf.int32)
            shared["cutoff"] = tf.where(mix_u < self.cfg.style_mixing, cutoff, num_ws)
        if phase == "Greg":
            res = self.cfg.resolution
            per["pl_noise"] = mine(normal(3, res, res, 3)) / math.sqrt(res * res)
        if self.cfg.augment and _AUGMENTED[phase]:
            p = self.augment_p.read_value()
            shared["p"] = p
            for j, which in enumerate(_AUGMENTED[phase]):
                u, g = uniform(4 + 2 * j, augment_lib.NUM_UNIFORM), normal(5 + 2 * j, augment_lib.NUM_NORMAL)
                per[f"aug_{which}_u"], per[f"aug_{which}_n"] = mine(u), mine(g)
                size = self.cfg.resolution
                shared[f"margin_{which}"] = (augment_lib.static_margin(size) if self.cfg.xla
                                             else augment_lib.batch_margin(size, p, u, g))
        return per, shared

    def mirror(self, reals: tf.Tensor, seed: tf.Tensor, replica: tf.Tensor | int) -> tf.Tensor:
        """This replica's reals [k * micro, ...], each x-flipped with probability 1/2 (the
        official dataset's --mirror, drawn per step here so that resume reproduces it)."""
        if not self.cfg.mirror:
            return reals
        flip_seed = tf.random.experimental.stateless_fold_in(seed, 1 << 20)
        flip = tf.random.stateless_uniform([self.accum, self.replicas, self.micro], flip_seed) < 0.5
        flip = tf.reshape(tf.gather(flip, replica, axis=1), [-1])
        return tf.where(flip[:, None, None, None], tf.reverse(reals, [2]), reals)

    # ----- one micro-batch of each phase ---------------------------------------------------

    def _ws(self, per: dict, shared: dict) -> tuple[tf.Tensor, tf.Tensor]:
        """ws [N, num_ws, w_dim] with the batch's style mixing, and the unmixed w (for w_avg)."""
        G = self.G
        if self.cfg.style_mixing > 0:
            ws, ws2 = tf.split(G.mapping(tf.concat([per["z"], per["z2"]], 0)), 2)
            layer = tf.range(G.num_ws)[None, :, None]
            return tf.where(layer < shared["cutoff"], ws, ws2), ws[:, 0]
        ws = G.mapping(per["z"])
        return ws, ws[:, 0]

    def _augment(self, images: tf.Tensor, per: dict, shared: dict, which: str) -> tf.Tensor:
        if not self.cfg.augment:
            return images
        return augment_lib.augment(images, shared["p"], per[f"aug_{which}_u"], per[f"aug_{which}_n"],
                                   shared[f"margin_{which}"])

    def _gradient(self, net: str, tape: tf.GradientTape, loss: tf.Tensor, variables: list) -> list:
        """d loss / d variables; in float16, taken of the loss x the loss scale (so that
        small gradients survive float16) and divided back. Zeros, not None, for weights a
        loss does not reach (R1 and D's output bias): Adam still steps its moments, as
        upstream's zero gradients do. (The inner gradients of R1 and the path length are
        not scaled: the official PyTorch code scales none.)"""
        if not self.fp16:
            return tape.gradient(loss, variables, unconnected_gradients=tf.UnconnectedGradients.ZERO)
        scale = tf.pow(2.0, self.loss_scale[net].read_value())
        grads = tape.gradient(loss, variables, output_gradients=scale,
                              unconnected_gradients=tf.UnconnectedGradients.ZERO)
        return [g / scale for g in grads]

    def _g_main(self, per: dict, shared: dict, reals: None, extra: Any) -> tuple[list, dict]:
        variables = [v.value for v in self.G.trainable_variables]
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(variables)
            ws, w = self._ws(per, shared)
            fakes = self.G.synthesis(ws, noise=per["noise"])
            logits = self.D(self._augment(fakes, per, shared, "fake"))
            loss = losses.g_nonsaturating_loss(logits)
        return self._gradient("G", tape, loss, variables), {"loss_g": loss, "w_mean": tf.reduce_mean(w, axis=0)}

    def _g_reg(self, per: dict, shared: dict, reals: None, extra: Any) -> tuple[list, dict]:
        cfg = self.cfg
        variables = [v.value for v in self.G.trainable_variables]
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(variables)
            ws, w = self._ws(per, shared)
            lengths = losses.path_lengths(self.G.synthesis, ws, per["noise"], per["pl_noise"])
            if extra is None:  # the whole batch: upstream's computation as it is
                penalty, mean = losses.pl_penalty(lengths, self.pl_mean.read_value(), cfg.pl_decay)
                objective = penalty
            else:  # part of a batch measured beforehand
                mean, batch_mean = extra
                penalty, objective = losses.pl_penalty_split(lengths, mean, batch_mean, cfg.pl_decay)
            loss = losses.lazy_pl(objective, cfg.pl_weight, cfg.pl_interval)
        stats = {"pl": tf.reduce_mean(penalty), "pl_length": tf.reduce_mean(lengths),
                 "pl_mean_new": tf.stop_gradient(mean), "w_mean": tf.reduce_mean(w, axis=0)}
        return self._gradient("G", tape, loss, variables), stats

    def _d_main(self, per: dict, shared: dict, reals: tf.Tensor, extra: Any) -> tuple[list, dict]:
        ws, w = self._ws(per, shared)
        fakes = tf.stop_gradient(self.G.synthesis(ws, noise=per["noise"]))
        variables = [v.value for v in self.D.trainable_variables]
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(variables)
            fake_logits = self.D(self._augment(fakes, per, shared, "fake"))
            real_logits = self.D(self._augment(reals, per, shared, "real"))
            loss = losses.d_logistic_loss(real_logits, fake_logits)
        stats = {"loss_d": loss, "d_real": tf.reduce_mean(real_logits), "d_fake": tf.reduce_mean(fake_logits),
                 "sign_real": tf.reduce_mean(tf.sign(real_logits)), "w_mean": tf.reduce_mean(w, axis=0)}
        return self._gradient("D", tape, loss, variables), stats

    def _d_reg(self, per: dict, shared: dict, reals: tf.Tensor, extra: Any) -> tuple[list, dict]:
        cfg = self.cfg
        variables = [v.value for v in self.D.trainable_variables]
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(variables)
            real_logits, penalty = losses.r1_penalty(
                lambda x: self.D(self._augment(x, per, shared, "real")), reals)
            loss = losses.lazy_r1(penalty, cfg.r1_gamma, cfg.r1_interval)
        stats = {"r1": tf.reduce_mean(penalty), "sign_real_reg": tf.reduce_mean(tf.sign(real_logits))}
        return self._gradient("D", tape, loss, variables), stats

    # ----- gradients of a phase over micro-batches ---------------------------------------------

    def _accumulate(self, micro_fn, per: dict, shared: dict, reals: tf.Tensor | None, extra: Any) -> tuple:
        """Mean gradients and stats over k micro-batches, each with its own images and
        random numbers (a sum would scale the step with k)."""
        if reals is not None:
            reals = tf.reshape(reals, [self.accum, self.micro, *reals.shape[1:]])

        def one(i) -> tuple[list, dict]:
            sub = tf.nest.map_structure(lambda t: t[i], per)
            return micro_fn(sub, shared, None if reals is None else reals[i], extra)

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

    def pl_lengths_mean(self, seed: tf.Tensor, replica: tf.Tensor | int = 0) -> tf.Tensor:
        """The Greg phase's mean path length over this replica's k micro-batches (its first pass)."""
        per, shared = self.draw("Greg", seed, replica)

        def one(i) -> tf.Tensor:
            sub = tf.nest.map_structure(lambda t: t[i], per)
            ws, _ = self._ws(sub, shared)
            return tf.reduce_mean(losses.path_lengths(self.G.synthesis, ws, sub["noise"], sub["pl_noise"]))

        total = one(0)
        if self.accum > 1:
            _, total = tf.while_loop(lambda i, _: i < self.accum, lambda i, t: (i + 1, t + one(i)),
                                     (tf.constant(1), total), parallel_iterations=1)
        return total / self.accum

    def _pl_reference(self, seed: tf.Tensor, replica: tf.Tensor | int) -> tuple[tf.Tensor, tf.Tensor] | None:
        """For a batch split over micro-batches or devices: (new running mean, the whole
        batch's mean length), measured by a first pass; None for a whole batch."""
        if self.accum * self.replicas == 1:
            return None
        batch_mean = self._pl_lengths(seed, replica)
        if self.replicas > 1:
            batch_mean = tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.MEAN, batch_mean)
        pl_mean = self.pl_mean.read_value()
        return pl_mean + (batch_mean - pl_mean) * self.cfg.pl_decay, batch_mean

    def grads(self, phase: str, seed: tf.Tensor, reals: tf.Tensor | None = None, replica: tf.Tensor | int = 0,
              extra: Any = None) -> tuple[list, dict]:
        """One phase's gradients (of G for Gmain and Greg, of D for Dmain and Dreg) and
        stats on this replica; `reals` [k * micro, H, W, 3] (mirrored already) for the D
        phases; `extra` for Greg is _pl_reference's."""
        per, shared = self.draw(phase, seed, replica)
        micro_fn = {"Gmain": self._g_main, "Greg": self._g_reg, "Dmain": self._d_main, "Dreg": self._d_reg}[phase]
        return self._accumulate(micro_fn, per, shared, reals, extra)

    def phase_grads(self, phase: str, seed: tf.Tensor, reals: tf.Tensor | None = None,
                    replica: tf.Tensor | int = 0) -> tuple[list, dict]:
        """grads() as a step takes them, the path-length first pass included (tests, benchmarks)."""
        # A tensor, as in a step: then a step reuses what a direct call traced, and vice versa.
        replica = tf.convert_to_tensor(replica, tf.int32)
        extra = self._pl_reference(seed, replica) if phase == "Greg" else None
        return self._grads[phase](seed, reals, replica, extra)

    # ----- steps ----------------------------------------------------------------------

    def apply(self, phase: str, grads: list) -> tf.Tensor | None:
        """The phase's optimiser step with a replica's mean gradients: NaN/inf cleaned as
        upstream does; Keras sums over replicas, so each holds 1/replicas of its mean.
        In float16 a step with any non-finite gradient is skipped instead (every gradient
        made NaN, which the sum carries to every replica, and Adam keeps what it had);
        returns whether this replica's gradients were finite (1.0) or not (0.0)."""
        net, opt = (self.G, self.g_opt) if phase[0] == "G" else (self.D, self.d_opt)
        if not self.fp16:
            opt.apply_gradients(zip([_clean(g) / self.replicas for g in grads], net.trainable_variables))
            return None
        finite = tf.reduce_all([tf.reduce_all(tf.math.is_finite(g)) for g in grads])
        grads = [tf.where(finite, g, tf.fill(tf.shape(g), math.nan)) / self.replicas for g in grads]
        opt.apply_gradients(zip(grads, net.trainable_variables))
        return tf.cast(finite, tf.float32)

    def update_buffers(self, phase: str, stats: dict) -> dict:
        """After a phase (stats reduced over replicas): w_avg moves towards the phase's
        mean w, the path-length running mean takes its new value, and in float16 the loss
        scale moves (a skipped step does not count as an optimiser step); returns the rest."""
        stats = dict(stats)
        finite = stats.pop("finite", None)
        if finite is not None:
            net = phase[0]
            ok = finite >= 1.0  # every replica's gradients were finite
            _, up, down = LOSS_SCALE_LOG2
            scale = self.loss_scale[net]
            scale.assign(tf.where(ok, scale + up, scale - down))
            opt = self.g_opt if net == "G" else self.d_opt
            opt.iterations.assign_sub(tf.where(ok, tf.constant(0, opt.iterations.dtype),
                                               tf.constant(1, opt.iterations.dtype)))
            stats[f"loss_scale_{net}"] = scale.read_value()
        w = stats.pop("w_mean", None)
        if w is not None:
            w_avg = self.G.mapping.w_avg
            w_avg.assign(w + (w_avg - w) * W_AVG_BETA)
        mean = stats.pop("pl_mean_new", None)
        if mean is not None:
            self.pl_mean.assign(mean)
        return stats

    def _phase(self, phase: str, reals=None) -> dict:
        """One phase on every replica: its gradients and optimiser step; then the buffers."""
        seed = self._next_seed()

        def replica(*args) -> dict:
            rid = tf.distribute.get_replica_context().replica_id_in_sync_group
            grads, stats = self.phase_grads(phase, seed, args[0] if args else None, rid)
            finite = self.apply(phase, grads)
            return stats if finite is None else {**stats, "finite": finite}

        stats = self.strategy.run(replica, args=() if reals is None else (reals,))
        reduced = {k: self.strategy.reduce("MEAN", v, axis=None) for k, v in stats.items()}
        return self.update_buffers(phase, reduced)

    def _g_step_fn(self, reg: bool) -> dict:
        stats = self._phase("Gmain")
        if reg:
            stats.update(self._phase("Greg"))
        self.g_steps.assign_add(1)
        return stats

    def _d_step_fn(self, reg: bool, reals) -> dict:
        seed = self._next_seed()
        reals = self.strategy.run(lambda x: self.mirror(
            x, seed, tf.distribute.get_replica_context().replica_id_in_sync_group), args=(reals,))
        stats = self._phase("Dmain", reals)
        if reg:
            stats.update(self._phase("Dreg", reals))
        self.nimg.assign_add(self.batch)
        self.d_steps.assign_add(1)
        return stats

    def _ema_fn(self, beta: tf.Tensor) -> None:
        for e, v in zip(self.G_ema.trainable_variables, self.G.trainable_variables):
            self.strategy.extended.update(e.value, lambda a, b: a.assign(b + (a - b) * beta), args=(v.value,),
                                          group=False)
        for e, v in zip(self.G_ema.non_trainable_variables, self.G.non_trainable_variables):
            e.assign(v)  # buffers (w_avg, the constant noise) as they are

    def ema_beta(self, nimg: int) -> float:
        """G_ema's decay for one iteration that starts at nimg images: half-life ema_kimg,
        capped at ema_rampup x nimg when ema_rampup is set (upstream's ramp-up)."""
        ema_nimg = self.cfg.ema_kimg * 1000.0
        if self.cfg.ema_rampup:
            ema_nimg = min(ema_nimg, nimg * self.cfg.ema_rampup)
        return 0.5 ** (self.batch * self.cfg.d_repeats / max(ema_nimg, 1e-8))

    def train_step(self, batches: Iterator) -> dict[str, float]:
        """One iteration: Gmain (+ Greg), d_repeats x (Dmain (+ Dreg), each on fresh
        reals), then the EMA and ADA; returns the stats, with `data_wait`: the seconds
        spent waiting for the reals (non-zero only where the reader falls behind)."""
        cfg = self.cfg
        start_nimg = int(self.nimg.numpy())
        g_reg = cfg.pl_weight > 0 and int(self.g_steps.numpy()) % cfg.pl_interval == 0
        out = {k: float(v) for k, v in self._g_step[g_reg]().items()}
        out["data_wait"] = 0.0
        for _ in range(cfg.d_repeats):
            d_reg = cfg.r1_gamma > 0 and int(self.d_steps.numpy()) % cfg.r1_interval == 0
            t0 = time.perf_counter()
            reals = next(batches)
            out["data_wait"] += time.perf_counter() - t0
            stats = {k: float(v) for k, v in self._d_step[d_reg](reals).items()}
            signs = [stats.pop("sign_real")] + ([stats.pop("sign_real_reg")] if d_reg else [])
            self._adapt_augment(signs)
            out.update(stats)
        self._ema_step(tf.constant(self.ema_beta(start_nimg), tf.float32))
        out["augment_p"] = float(self.augment_p.numpy())
        return out

    def _adapt_augment(self, signs: list[float]) -> None:
        """ADA: every few D steps move p so that E[sign(D(real))], D's overfitting
        heuristic over every real logit of those steps (Dreg's too, as upstream counts
        them), tracks the target; p stays >= 0 (upstream sets no upper bound). The
        running sum is checkpointed with p."""
        if not self.cfg.augment or self.cfg.ada_target <= 0:
            return
        for sign in signs:
            self.ada_signs.assign_add(sign * self.batch)
            self.ada_count.assign_add(float(self.batch))
        if int(self.d_steps.numpy()) % ADA_INTERVAL:
            return
        rt = float(self.ada_signs.numpy()) / max(float(self.ada_count.numpy()), 1.0)
        self.ada_signs.assign(0.0)
        self.ada_count.assign(0.0)
        step = np.sign(rt - self.cfg.ada_target) * self.batch * ADA_INTERVAL / (self.cfg.ada_kimg * 1000)
        self.augment_p.assign(float(max(self.augment_p.numpy() + step, 0.0)))

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
        """A snapshot's whole state; then the configured learning rates (which may have changed)."""
        try:
            self.checkpoint.read(prefix).assert_consumed()
        except AssertionError as e:
            raise SetupError(
                f"cannot resume from {prefix}: it does not hold this trainer's state ({str(e).splitlines()[0]}); "
                f"snapshots written before ganflow trained with path-length regularisation and separate "
                f"regularisation passes cannot be continued; move that run's directory aside and start afresh "
                f"with init_from pointing at it, to start from its networks") from e
        self.set_learning_rates()

    def load_networks(self, source: Path) -> None:
        """Weights only (G, G_ema, D) from a snapshot or an export, for transfer learning."""
        if (source / "generator").is_dir():
            weights.read_network(source, "generator", self.G_ema)
            weights.read_network(source, "discriminator", self.D)
            for g, e in zip(self.G.weights, self.G_ema.weights):
                g.assign(e)
        else:
            status = tf.train.Checkpoint(G=self.G, G_ema=self.G_ema, D=self.D).read(str(source / "ckpt"))
            status.expect_partial().assert_existing_objects_matched()


def step_batches(images: tf.data.Dataset, trainer: Trainer) -> Iterator:
    """Batches of one D step, arranged so replica r receives its [k, micro] block.

    Every input pipeline (one per worker process) reads the same global batches and keeps
    its own replicas' blocks, so any layout of devices and workers sees exactly what one
    device would (the whole stream is decoded on each worker: see README)."""
    k, r, m = trainer.accum, trainer.replicas, trainer.micro
    ds = images.repeat().batch(trainer.batch, drop_remainder=True)

    def blocks(x: tf.Tensor) -> tf.Tensor:  # [r, k * m, H, W, C]: replica i's images in row i
        x = tf.reshape(x, [k, r, m, *x.shape[1:]])
        return tf.reshape(tf.transpose(x, [1, 0, 2, 3, 4, 5]), [r, k * m, *x.shape[3:]])

    def pipeline(ctx: tf.distribute.InputContext) -> tf.data.Dataset:
        local = r // ctx.num_input_pipelines
        first = ctx.input_pipeline_id * local
        mine = ds.map(lambda x: blocks(x)[first:first + local])
        return mine.unbatch().prefetch(tf.data.AUTOTUNE)  # one element per local replica, in order

    return iter(trainer.strategy.distribute_datasets_from_function(pipeline))
