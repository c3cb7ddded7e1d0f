"""Hinge loss (Lim & Ye 2017; Miyato et al. 2018)."""
from __future__ import annotations

from keras import ops

from ganctl.losses.base import Loss


class Hinge(Loss):
    """D pushes real outputs above +1 and fake ones below -1; G raises D's output on fakes."""

    def discriminator_loss(self, real_logits, fake_logits):
        real_logits = ops.cast(real_logits, "float32")
        fake_logits = ops.cast(fake_logits, "float32")
        return ops.mean(ops.relu(1.0 - real_logits)) + ops.mean(ops.relu(1.0 + fake_logits))

    def generator_loss(self, fake_logits, real_logits=None):
        return -ops.mean(ops.cast(fake_logits, "float32"))
