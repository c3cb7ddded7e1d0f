"""Least-squares GAN (Mao et al. 2017) with targets a=0 (fake), b=1 (real), c=1 (G)."""
from __future__ import annotations

from keras import ops

from ganctl.losses.base import Loss


class LeastSquares(Loss):
    """Squared distance of D's raw outputs to the targets; no sigmoid."""

    boundary = 0.5  # halfway between the fake (0) and real (1) targets

    def discriminator_loss(self, real_logits, fake_logits):
        real_logits = ops.cast(real_logits, "float32")
        fake_logits = ops.cast(fake_logits, "float32")
        return 0.5 * ops.mean(ops.square(real_logits - 1.0)) + 0.5 * ops.mean(ops.square(fake_logits))

    def generator_loss(self, fake_logits, real_logits=None):
        return 0.5 * ops.mean(ops.square(ops.cast(fake_logits, "float32") - 1.0))
