"""The StyleGAN2 losses and regularisers, one small function per term, so that each reads
against the papers (StyleGAN2 section 3.2 and appendix B, Mescheder et al. 2018 for R1)
and against the official StyleGAN2Loss term by term, while the trainer decides when and on
which images they run (trainer.py: phases Gmain, Greg, Dmain, Dreg as upstream).

What upstream does and these functions do too:
- R1 is the squared gradient of D's logits with respect to the reals *before*
  augmentation: the caller passes D composed with the (differentiable) augmentation, so
  the penalty's gradient is a second derivative through both.
- Lazy regularisation runs in passes of its own every `interval` steps, its loss scaled
  by the interval; the optimiser corrections for that (lr x c, betas ^ c) are the
  trainer's.
- Path-length regularisation: J_w^T y for y ~ N(0, I) / sqrt(H W) per image, its length
  the root mean over the ws of the squared norms, penalised as (length - a)^2 where a
  is the running mean, moved by `decay` towards this batch's mean inside the graph (so
  the penalty's gradient also flows through that batch mean, as upstream's does).
"""

from __future__ import annotations

from typing import Callable, Sequence

import tensorflow as tf


def g_nonsaturating_loss(fake_logits: tf.Tensor) -> tf.Tensor:
    """G's non-saturating logistic loss, E[-log sigmoid(D(G(z)))] = E[softplus(-D(G(z)))]."""
    return tf.reduce_mean(tf.nn.softplus(-fake_logits))


def d_logistic_loss(real_logits: tf.Tensor, fake_logits: tf.Tensor) -> tf.Tensor:
    """D's logistic loss, E[softplus(D(G(z)))] + E[softplus(-D(x))]."""
    return tf.reduce_mean(tf.nn.softplus(fake_logits)) + tf.reduce_mean(tf.nn.softplus(-real_logits))


def r1_penalty(D: Callable[[tf.Tensor], tf.Tensor], reals: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """R1: |grad_x D(x)|^2 per real image x, with D's logits on them.

    `D` is everything between the reals and the logits (augmentation included). Call it
    under the tape that differentiates D's loss: the penalty's own gradient with respect
    to D's weights is a second derivative, so that tape must see this one.
    """
    with tf.GradientTape(watch_accessed_variables=False) as tape:
        tape.watch(reals)
        real_logits = D(reals)
        total = tf.reduce_sum(real_logits)
    slopes = tape.gradient(total, reals)
    return real_logits, tf.reduce_sum(tf.square(slopes), axis=[1, 2, 3])


def lazy_r1(penalty: tf.Tensor, gamma: float, interval: int) -> tf.Tensor:
    """R1's loss in its own pass every `interval` D steps: gamma / 2 * E[R1] x interval."""
    return tf.reduce_mean(penalty) * (gamma / 2 * interval)


def path_lengths(synthesis: Callable[..., tf.Tensor], ws: tf.Tensor, noise: Sequence[tf.Tensor] | None,
                 pl_noise: tf.Tensor) -> tf.Tensor:
    """|J_w^T y| per image: y = `pl_noise` (N(0, 1) / sqrt(H * W), image-shaped), the
    gradient taken with respect to all of ws [N, num_ws, w_dim] (mixed ws included), its
    length sqrt(mean over ws of the squared norm over w_dim).

    Like r1_penalty, call it under the tape of G's weights: its gradient is a second one.
    """
    with tf.GradientTape(watch_accessed_variables=False) as tape:
        tape.watch(ws)
        images = synthesis(ws, noise=noise)
        total = tf.reduce_sum(images * pl_noise)
    grads = tape.gradient(total, ws)
    return tf.sqrt(tf.reduce_mean(tf.reduce_sum(tf.square(grads), axis=2), axis=1))


def pl_penalty(lengths: tf.Tensor, pl_mean: tf.Tensor, decay: float) -> tuple[tf.Tensor, tf.Tensor]:
    """((length - a)^2 per image, a): a = pl_mean moved `decay` of the way towards this
    batch's mean length, inside the graph (the new running mean; store it stopped)."""
    a = pl_mean + (tf.reduce_mean(lengths) - pl_mean) * decay
    return tf.square(lengths - a), a


def pl_penalty_split(lengths: tf.Tensor, mean: tf.Tensor, batch_mean: tf.Tensor,
                     decay: float) -> tuple[tf.Tensor, tf.Tensor]:
    """pl_penalty for one part of a batch whose mean length `batch_mean` and new running
    mean `mean` were taken beforehand over the whole batch (both constants here):
    (penalty per image, a per-image objective whose gradient, averaged over the whole
    batch, equals that of pl_penalty's mean penalty).

    d/dθ of mean_i (l_i - a)^2 with a = a0 + decay (mean_j l_j - a0) is
    mean_i [2 (l_i - a) - 2 decay (mean_j l_j - a)] dl_i/dθ: the second term couples the
    images through the batch mean; as a constant factor on l_i it splits over parts.
    """
    mean, batch_mean = tf.stop_gradient(mean), tf.stop_gradient(batch_mean)
    penalty = tf.square(lengths - mean)
    return penalty, penalty - 2 * decay * (batch_mean - mean) * lengths


def lazy_pl(penalty: tf.Tensor, weight: float, interval: int) -> tf.Tensor:
    """Path-length loss in its own pass every `interval` G steps: weight x E[penalty] x interval."""
    return tf.reduce_mean(penalty) * (weight * interval)
