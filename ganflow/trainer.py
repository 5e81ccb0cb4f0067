"""The StyleGAN2 update: networks, optimisers, counters and the compiled D and G steps.

Apart from the loop (train.py) that runs it, writes snapshots and logs, so that the
maths of one step can be read, benchmarked and tested on its own.

Choices the papers leave open, and why:
- Randomness comes from stateless RNG keyed by (seed, counter); the counter is saved
  in every snapshot, so a resumed run draws the numbers the killed one would have.
  Each step draws its random numbers for the whole global batch laid out as
  [accumulation, replica, micro-batch] and every replica takes its slice: k
  micro-batches on R devices then see exactly what one k*R times larger batch would.
- Gradients of k micro-batches are averaged (each is a mean over its images), never
  summed; with minibatch-stddev groups of consecutive images no larger than a
  micro-batch the update equals that of the large batch (tests prove it).
- kimg counts real images shown to D, as the classic StyleGAN schedule did.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import tensorflow as tf
import keras

from ganflow import augment as augment_lib
from ganflow import losses, networks, weights
from ganflow.runlog import SetupError
from ganflow.train_config import TrainConfig

W_AVG_BETA = 0.995
ADA_INTERVAL = 4


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
            raise SetupError(
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

    # ----- gradients ----------------------------------------------------------------

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
                real_logits, penalty = losses.d_r1_penalty(self.D, reals)
            else:
                real_logits, penalty = self.D(reals), tf.constant(0.0)
            main = losses.d_logistic_loss(real_logits, fake_logits)
            loss = main + losses.lazy_r1(penalty, self.cfg.r1_gamma, self.cfg.r1_interval)
        stats = {"loss_d": main, "r1": penalty, "d_real": tf.reduce_mean(real_logits),
                 "d_fake": tf.reduce_mean(fake_logits), "sign_real": tf.reduce_mean(tf.sign(real_logits))}
        return tape.gradient(loss, variables), stats

    def _g_micro(self, rnd: dict[str, Any]) -> tuple[list, dict]:
        variables = [v.value for v in self.G.trainable_variables]
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(variables)
            fakes, w = self._fakes(rnd)
            logits = self.D(self._augment(fakes, rnd, 1))
            loss = losses.g_nonsaturating_loss(logits)
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
            weights.read_network(source, "generator", self.G_ema)
            weights.read_network(source, "discriminator", self.D)
            for g, e in zip(self.G.weights, self.G_ema.weights):
                g.assign(e)
        else:
            status = tf.train.Checkpoint(G=self.G, G_ema=self.G_ema, D=self.D).read(str(source / "ckpt"))
            status.expect_partial().assert_existing_objects_matched()


def step_batches(images: tf.data.Dataset, trainer: Trainer) -> Iterator:
    """Batches of one D step, arranged so replica r receives its [k, micro] block."""
    k, r, m = trainer.accum, trainer.replicas, trainer.micro
    ds = images.repeat().batch(trainer.batch, drop_remainder=True)
    if r > 1 and k > 1:
        def arrange(x: tf.Tensor) -> tf.Tensor:
            x = tf.reshape(x, [k, r, m, *x.shape[1:]])
            return tf.reshape(tf.transpose(x, [1, 0, 2, 3, 4, 5]), [k * r * m, *x.shape[3:]])
        ds = ds.map(arrange)
    return iter(trainer.strategy.experimental_distribute_dataset(ds.prefetch(tf.data.AUTOTUNE)))
