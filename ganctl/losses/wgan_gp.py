"""Wasserstein critic with gradient penalty (Gulrajani et al. 2017)."""
from __future__ import annotations

import keras
from keras import ops

from ganctl.losses.base import Loss, input_gradients
from ganctl.replicas import replica_rows


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

    boundary = None  # a critic's offset means nothing

    def __init__(self, d_steps_per_g_step: int = 1, g_steps_per_d_step: int = 1,
                 gp_weight: float = 0.0, r1_weight: float = 0.0, r1_every: int = 1):
        super().__init__(d_steps_per_g_step=d_steps_per_g_step,
                         g_steps_per_d_step=g_steps_per_d_step, r1_weight=r1_weight,
                         r1_every=r1_every)
        self.gp_weight = float(gp_weight)

    def discriminator_loss(self, real_logits, fake_logits):
        return (ops.mean(ops.cast(fake_logits, "float32"))
                - ops.mean(ops.cast(real_logits, "float32")))

    def generator_loss(self, fake_logits, real_logits=None):
        return -ops.mean(ops.cast(fake_logits, "float32"))

    def own_penalty(self, discriminator, real_images, fake_images, seed_generator):
        if self.gp_weight == 0:
            # Skip the extra forward/backward pass; nothing would be added.
            return ops.zeros((), dtype="float32")
        interpolated = random_interpolation(real_images, fake_images, seed_generator)
        gradients = input_gradients(discriminator, interpolated)
        # The epsilon keeps sqrt differentiable where the gradient is exactly zero.
        norms = ops.sqrt(ops.sum(ops.square(gradients), axis=1) + 1e-12)
        return self.gp_weight * ops.mean(ops.square(norms - 1.0))
