"""Relativistic pairing GAN (Jolicoeur-Martineau 2019; R3GAN, Huang et al. 2024)."""
from __future__ import annotations

from keras import ops

from ganctl.losses.base import Loss


class RelativisticPairing(Loss):
    """D scores each real example against a fake one: softplus(D(fake) - D(real)); G the
    reverse. Each fake is judged against data rather than against a fixed boundary, which
    R3GAN shows removes the mode-dropping optima of the non-saturating loss."""

    boundary = None            # only differences of D's outputs mean anything
    generator_needs_real = True

    def discriminator_loss(self, real_logits, fake_logits):
        return ops.mean(ops.softplus(differences(fake_logits, real_logits)))

    def generator_loss(self, fake_logits, real_logits=None):
        if real_logits is None:
            raise ValueError("the relativistic pairing loss scores fakes against real "
                             "examples: generator_loss needs real_logits")
        return ops.mean(ops.softplus(differences(real_logits, fake_logits)))


def differences(minuend, subtrahend):
    """minuend - subtrahend, pair by pair (the i-th real with the i-th fake), in float32."""
    return ops.cast(minuend, "float32") - ops.cast(subtrahend, "float32")
