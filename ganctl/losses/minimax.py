"""The original saturating GAN objective (Goodfellow et al. 2014)."""
from __future__ import annotations

from keras import ops

from ganctl.losses.base import Loss


def binary_cross_entropy(real_logits, fake_logits):
    """D's BCE from logits: -log D(x) - log(1 - D(G(z))), written with softplus for stability."""
    real_logits = ops.cast(real_logits, "float32")
    fake_logits = ops.cast(fake_logits, "float32")
    return ops.mean(ops.softplus(-real_logits)) + ops.mean(ops.softplus(fake_logits))


class Minimax(Loss):
    """G minimises log(1 - D(G(z))); its gradient vanishes once D rejects fakes confidently."""

    uses_sigmoid = True

    def discriminator_loss(self, real_logits, fake_logits):
        return binary_cross_entropy(real_logits, fake_logits)

    def generator_loss(self, fake_logits, real_logits=None):
        # log(1 - sigmoid(x)) = -softplus(x), exact and stable for any logit.
        return -ops.mean(ops.softplus(ops.cast(fake_logits, "float32")))
