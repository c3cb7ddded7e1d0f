"""One signature for every GAN loss, with penalties kept apart (compare_gan / TF-GAN style)."""
from __future__ import annotations

import abc

from ganctl.errors import UserError


class Loss(abc.ABC):
    """Pure functions of the discriminator's raw outputs (logits / critic values).

    discriminator_loss(real_logits, fake_logits) -> scalar
    generator_loss(fake_logits) -> scalar
    penalty(discriminator, real_images, fake_images, seed_generator) -> scalar: the loss's own
        penalty (own_penalty; WGAN-GP's gradient penalty) plus the R1 penalty of any loss.
    probability(logits) -> what is logged as D(x): sigmoid for the BCE losses, identity otherwise.
    """

    uses_sigmoid = False

    def __init__(self, d_steps_per_g_step: int = 1, gp_weight: float = 0.0, r1_weight: float = 0.0):
        if isinstance(r1_weight, bool) or not isinstance(r1_weight, (int, float)) or not r1_weight >= 0:
            raise UserError(f"loss.r1_weight={r1_weight} is invalid: the R1 penalty weight (gamma) "
                            "must be a number >= 0 (Mescheder et al. 2018 use 10; 0 disables it).")
        self.d_steps_per_g_step = d_steps_per_g_step
        self.gp_weight = gp_weight
        self.r1_weight = float(r1_weight)

    @abc.abstractmethod
    def discriminator_loss(self, real_logits, fake_logits):
        """Scalar loss D minimises, from D's raw outputs on a real and a fake batch."""

    @abc.abstractmethod
    def generator_loss(self, fake_logits):
        """Scalar loss G minimises, from D's raw outputs on a fake batch."""

    def penalty(self, discriminator, real_images, fake_images, seed_generator):
        total = self.own_penalty(discriminator, real_images, fake_images, seed_generator)
        if self.r1_weight > 0:
            total = total + r1_penalty(discriminator, real_images, self.r1_weight)
        return total

    def own_penalty(self, discriminator, real_images, fake_images, seed_generator):
        return 0.0

    def probability(self, logits):
        from keras import ops

        return ops.sigmoid(logits) if self.uses_sigmoid else logits


def r1_penalty(discriminator, real_images, r1_weight: float):
    """R1 (Mescheder et al. 2018): r1_weight / 2 * E ||grad_x D(x)||^2 on real images only.

    A zero-centred penalty on the data: Mescheder et al. show it makes GAN training locally
    convergent, which unregularised and WGAN-GP training are not in general.
    """
    import tensorflow as tf
    from keras import ops

    real_images = ops.cast(real_images, "float32")
    with tf.GradientTape() as tape:
        tape.watch(real_images)
        # Summing is safe: each example's output depends only on that example (no batch norm).
        values = discriminator(real_images, training=True)
        logits = ops.sum(ops.cast(values, "float32"))
    gradients = tape.gradient(logits, real_images)
    # One squared norm per verdict: per example, or per pack (model.discriminator.pack).
    gradients = ops.reshape(gradients, (ops.shape(values)[0], -1))
    return 0.5 * r1_weight * ops.mean(ops.sum(ops.square(gradients), axis=1))
