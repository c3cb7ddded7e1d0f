"""Least-squares GAN (Mao et al. 2017) with targets a=0 (fake), b=1 (real), c=1 (G)."""
from __future__ import annotations

from keras import ops

from ganctl.losses.base import Loss
from ganctl.losses.minimax import check_d_steps


class LeastSquares(Loss):
    """Squared distance of D's raw outputs to the targets; no sigmoid."""

    def __init__(self, d_steps_per_g_step: int = 1, r1_weight: float = 0.0):
        super().__init__(d_steps_per_g_step=check_d_steps(d_steps_per_g_step), r1_weight=r1_weight)

    def discriminator_loss(self, real_logits, fake_logits):
        real_logits = ops.cast(real_logits, "float32")
        fake_logits = ops.cast(fake_logits, "float32")
        return 0.5 * ops.mean(ops.square(real_logits - 1.0)) + 0.5 * ops.mean(ops.square(fake_logits))

    def generator_loss(self, fake_logits):
        return 0.5 * ops.mean(ops.square(ops.cast(fake_logits, "float32") - 1.0))
