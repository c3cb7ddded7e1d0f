"""Wasserstein critic with gradient penalty (Gulrajani et al. 2017)."""
from __future__ import annotations

import keras
import tensorflow as tf
from keras import ops

from ganctl.errors import UserError
from ganctl.losses.base import Loss
from ganctl.losses.minimax import check_d_steps
from ganctl.training.distribute import replica_rows


def random_interpolation(real_images, fake_images, seed_generator):
    """Points on straight lines between real and fake examples, one eps ~ U[0, 1] per example.

    Uniform, as in the paper: a normal eps (a known slip in some Keras examples) samples
    points far outside the segment, where the 1-Lipschitz constraint is not meant to hold.
    """
    real_images = ops.cast(real_images, "float32")
    fake_images = ops.cast(fake_images, "float32")
    eps_shape = (ops.shape(real_images)[0],) + (1,) * (len(real_images.shape) - 1)
    eps = replica_rows(lambda shape: keras.random.uniform(shape, 0.0, 1.0, seed=seed_generator),
                       eps_shape)  # one device's draw under train.strategy too
    return eps * real_images + (1.0 - eps) * fake_images


class WassersteinGP(Loss):
    """D maximises mean(D(real)) - mean(D(fake)); penalty keeps ||grad D|| near 1 in between."""

    def __init__(self, d_steps_per_g_step: int = 1, gp_weight: float = 0.0, r1_weight: float = 0.0):
        if isinstance(gp_weight, bool) or not isinstance(gp_weight, (int, float)) or not gp_weight >= 0:
            raise UserError(f"loss.gp_weight={gp_weight} is invalid: the gradient penalty weight "
                            "must be a number >= 0 (the paper uses 10; 0 disables the penalty).")
        super().__init__(d_steps_per_g_step=check_d_steps(d_steps_per_g_step),
                         gp_weight=float(gp_weight), r1_weight=r1_weight)

    def discriminator_loss(self, real_logits, fake_logits):
        return (ops.mean(ops.cast(fake_logits, "float32"))
                - ops.mean(ops.cast(real_logits, "float32")))

    def generator_loss(self, fake_logits):
        return -ops.mean(ops.cast(fake_logits, "float32"))

    def own_penalty(self, discriminator, real_images, fake_images, seed_generator):
        if self.gp_weight == 0:
            # Skip the extra forward/backward pass; nothing would be added.
            return ops.zeros((), dtype="float32")
        interpolated = random_interpolation(real_images, fake_images, seed_generator)
        with tf.GradientTape() as tape:
            tape.watch(interpolated)
            # Summing is safe: each example's critic value depends only on that example
            # (the critic must not use batch norm, which WGAN-GP forbids anyway).
            values = discriminator(interpolated, training=True)
            critic = ops.sum(ops.cast(values, "float32"))
        gradients = tape.gradient(critic, interpolated)
        # One norm per verdict: per example, or per pack of model.discriminator.pack examples.
        gradients = ops.reshape(gradients, (ops.shape(values)[0], -1))
        # The epsilon keeps sqrt differentiable where the gradient is exactly zero.
        norms = ops.sqrt(ops.sum(ops.square(gradients), axis=1) + 1e-12)
        return self.gp_weight * ops.mean(ops.square(norms - 1.0))
