"""The StyleGAN2 losses and regularisers, one small function per term of the paper, so
each reads against NVlabs' loss.py (and rosinality's d_logistic_loss, d_r1_loss) term
by term while the trainer decides when and on which images they run.

Choices the papers leave open, and why:
- Lazy R1 is added to the D loss every `r1_interval` D steps, scaled by the interval, in
  the same pass as the main loss; no extra optimiser step is taken, so Adam's
  hyperparameters need no lazy-regularisation correction.
- R1 is taken with respect to the images D actually sees (after augmentation), which
  needs no second derivative through the augmentation.
"""

from __future__ import annotations

from typing import Callable

import tensorflow as tf


def g_nonsaturating_loss(fake_logits: tf.Tensor) -> tf.Tensor:
    """G's non-saturating logistic loss, E[-log sigmoid(D(G(z)))] = E[softplus(-D(G(z)))]."""
    return tf.reduce_mean(tf.nn.softplus(-fake_logits))


def d_logistic_loss(real_logits: tf.Tensor, fake_logits: tf.Tensor) -> tf.Tensor:
    """D's logistic loss, E[softplus(D(G(z)))] + E[softplus(-D(x))]."""
    return tf.reduce_mean(tf.nn.softplus(fake_logits)) + tf.reduce_mean(tf.nn.softplus(-real_logits))


def d_r1_penalty(D: Callable[[tf.Tensor], tf.Tensor], reals: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """R1 (Mescheder et al. 2018): E[|grad_x D(x)|^2] on reals, with D's logits on them.

    Call it under the tape that differentiates D's loss: the penalty's own gradient with
    respect to D's weights is a second derivative, so that tape must see this one.
    """
    with tf.GradientTape(watch_accessed_variables=False) as tape:
        tape.watch(reals)
        real_logits = D(reals)
        total = tf.reduce_sum(real_logits)
    slopes = tape.gradient(total, reals)
    return real_logits, tf.reduce_mean(tf.reduce_sum(tf.square(slopes), axis=[1, 2, 3]))


def lazy_r1(penalty: tf.Tensor, gamma: float, interval: int) -> tf.Tensor:
    """The R1 term of D's loss, gamma/2 * R1, taken every `interval` steps and so scaled by it."""
    return penalty * (gamma / 2 * interval)
