"""One signature for every GAN loss, with penalties kept apart (compare_gan / TF-GAN style)."""
from __future__ import annotations

import abc

from ganctl.errors import UserError


def check_d_steps(d_steps_per_g_step: int) -> int:
    """d_steps_per_g_step, or a UserError: every loss needs at least one D update per G update."""
    if isinstance(d_steps_per_g_step, bool) or not isinstance(d_steps_per_g_step, int) \
            or d_steps_per_g_step < 1:
        raise UserError(f"loss.d_steps_per_g_step={d_steps_per_g_step} is invalid: it counts "
                        "discriminator updates per generator update and must be an integer >= 1 "
                        "(1 for the BCE, least-squares and hinge losses; WGAN-GP uses 5).")
    return d_steps_per_g_step


def check_penalty_weight(key: str, weight: float, what: str) -> float:
    """weight as a float, or a UserError: a penalty weight is a number >= 0 (0 turns it off)."""
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not weight >= 0:
        raise UserError(f"loss.{key}={weight} is invalid: {what}")
    return float(weight)


class Loss(abc.ABC):
    """Pure functions of the discriminator's raw outputs (logits / critic values).

    discriminator_loss(real_logits, fake_logits) -> scalar
    generator_loss(fake_logits) -> scalar
    penalty(discriminator, real_images, fake_images, seed_generator) -> scalar: the loss's own
        penalty (own_penalty; WGAN-GP's gradient penalty) plus the R1 penalty of any loss.
    probability(logits) -> what is logged as D(x): sigmoid for the BCE losses, identity otherwise.

    The constructor checks the arguments every loss takes, so a subclass needs no __init__
    unless it adds a knob (WGAN-GP's gp_weight). Its signature is what a loss YAML may set:
    registry.build refuses a key the class does not take.
    """

    uses_sigmoid = False
    gp_weight = 0.0     # only WGAN-GP has a gradient penalty; read by the tests of every loss

    def __init__(self, d_steps_per_g_step: int = 1, r1_weight: float = 0.0):
        self.d_steps_per_g_step = check_d_steps(d_steps_per_g_step)
        self.r1_weight = check_penalty_weight(
            "r1_weight", r1_weight, "the R1 penalty weight (gamma) must be a number >= 0 "
            "(Mescheder et al. 2018 use 10; 0 disables it).")

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


def input_gradients(discriminator, images):
    """grad_x D(x) for each example of a float32 batch, flattened to (N, features).

    The one gradient both penalties take: R1 at real images, WGAN-GP at interpolates.
    """
    import tensorflow as tf
    from keras import ops

    images = ops.cast(images, "float32")
    with tf.GradientTape() as tape:
        tape.watch(images)
        # Summing is safe: each example's output depends only on that example (no batch norm:
        # validate.py refuses it with either penalty, and WGAN-GP forbids it anyway).
        outputs = ops.sum(ops.cast(discriminator(images, training=True), "float32"))
    gradients = tape.gradient(outputs, images)
    return ops.reshape(gradients, (ops.shape(gradients)[0], -1))


def r1_penalty(discriminator, real_images, r1_weight: float):
    """R1 (Mescheder et al. 2018): r1_weight / 2 * E ||grad_x D(x)||^2 on real images only.

    A zero-centred penalty on the data: Mescheder et al. show it makes GAN training locally
    convergent, which unregularised and WGAN-GP training are not in general.
    """
    from keras import ops

    gradients = input_gradients(discriminator, real_images)
    return 0.5 * r1_weight * ops.mean(ops.sum(ops.square(gradients), axis=1))
