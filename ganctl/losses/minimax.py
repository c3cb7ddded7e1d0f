"""The original saturating GAN objective (Goodfellow et al. 2014)."""
from __future__ import annotations

from keras import ops

from ganctl.errors import UserError
from ganctl.losses.base import Loss


def check_d_steps(d_steps_per_g_step: int) -> int:
    """d_steps_per_g_step, or a UserError: every loss needs at least one D update per G update."""
    if isinstance(d_steps_per_g_step, bool) or not isinstance(d_steps_per_g_step, int) \
            or d_steps_per_g_step < 1:
        raise UserError(f"loss.d_steps_per_g_step={d_steps_per_g_step} is invalid: it counts "
                        "discriminator updates per generator update and must be an integer >= 1 "
                        "(1 for the BCE, least-squares and hinge losses; WGAN-GP uses 5).")
    return d_steps_per_g_step


def binary_cross_entropy(real_logits, fake_logits):
    """D's BCE from logits: -log D(x) - log(1 - D(G(z))), written with softplus for stability."""
    real_logits = ops.cast(real_logits, "float32")
    fake_logits = ops.cast(fake_logits, "float32")
    return ops.mean(ops.softplus(-real_logits)) + ops.mean(ops.softplus(fake_logits))


class Minimax(Loss):
    """G minimises log(1 - D(G(z))); its gradient vanishes once D rejects fakes confidently."""

    uses_sigmoid = True

    def __init__(self, d_steps_per_g_step: int = 1, r1_weight: float = 0.0):
        super().__init__(d_steps_per_g_step=check_d_steps(d_steps_per_g_step), r1_weight=r1_weight)

    def discriminator_loss(self, real_logits, fake_logits):
        return binary_cross_entropy(real_logits, fake_logits)

    def generator_loss(self, fake_logits):
        # log(1 - sigmoid(x)) = -softplus(x), exact and stable for any logit.
        return -ops.mean(ops.softplus(ops.cast(fake_logits, "float32")))
