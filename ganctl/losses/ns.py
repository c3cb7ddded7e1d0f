"""Non-saturating BCE: the usual default."""
from __future__ import annotations

from keras import ops

from ganctl.losses.minimax import Minimax


class NonSaturating(Minimax):
    """Same D as minimax, but G maximises log D(G(z)), which keeps a strong gradient early on."""

    def generator_loss(self, fake_logits, real_logits=None):
        # -log(sigmoid(x)) = softplus(-x).
        return ops.mean(ops.softplus(-ops.cast(fake_logits, "float32")))
