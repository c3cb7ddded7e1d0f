"""CycleGAN's objective (Zhu et al. 2017): least-squares adversarial terms for both directions,
cycle consistency in both directions and the identity term, as the authors' trainer weighs them.
"""
from __future__ import annotations

from keras import ops


def mean_absolute_error(a, b):
    return ops.mean(ops.abs(ops.cast(a, "float32") - ops.cast(b, "float32")))


class CycleGAN:
    """Per discriminator: d_loss_scale * (mean (D(real) - 1)^2 + mean D(fake)^2), halved by
    default as the authors do. Both generators: mean (D(fake) - 1)^2 per direction (without
    LSGAN's half, the authors' weighting against the other terms), the cycle terms
    lambda * |F(G(a)) - a| + lambda * |G(F(b)) - b|, and the identity terms
    identity_weight * lambda * (|G(b) - b| + |F(a) - a|); G: A -> B, F: B -> A.
    """

    def __init__(self, cycle_weight: float = 10.0, identity_weight: float = 0.5,
                 d_loss_scale: float = 0.5):
        self.cycle_weight = float(cycle_weight)
        self.identity_weight = float(identity_weight)
        self.d_loss_scale = float(d_loss_scale)

    def discriminator_loss(self, real_logits, fake_logits):
        real_logits = ops.cast(real_logits, "float32")
        fake_logits = ops.cast(fake_logits, "float32")
        return self.d_loss_scale * (ops.mean(ops.square(real_logits - 1.0))
                                    + ops.mean(ops.square(fake_logits)))

    def generator_loss(self, fake_logits):
        return ops.mean(ops.square(ops.cast(fake_logits, "float32") - 1.0))

    def generators_loss(self, generator_ab, generator_ba, discriminator_a, discriminator_b,
                        real_a, real_b, training=True):
        """(total, parts, fake_a, fake_b) for both generators together, from one forward pass.

        Both cycle terms run through both generators (A -> B -> A and B -> A -> B), so the one
        total, differentiated for each generator's weights, trains G_AB and G_BA on both
        (taking each generator's gradient from its own direction's terms only loses half).
        fake_a, fake_b: the translations, for the discriminators' history pools.
        """
        fake_b = generator_ab(real_a, training=training)
        fake_a = generator_ba(real_b, training=training)
        cycled_a = generator_ba(fake_b, training=training)
        cycled_b = generator_ab(fake_a, training=training)
        parts = {
            "adversarial_ab": self.generator_loss(discriminator_b(fake_b, training=training)),
            "adversarial_ba": self.generator_loss(discriminator_a(fake_a, training=training)),
            "cycle_a": self.cycle_weight * mean_absolute_error(cycled_a, real_a),
            "cycle_b": self.cycle_weight * mean_absolute_error(cycled_b, real_b),
        }
        if self.identity_weight > 0:  # skip two generator calls when the term is off
            weight = self.identity_weight * self.cycle_weight
            parts["identity_a"] = weight * mean_absolute_error(
                generator_ba(real_a, training=training), real_a)
            parts["identity_b"] = weight * mean_absolute_error(
                generator_ab(real_b, training=training), real_b)
        total = sum(parts.values())
        return total, parts, fake_a, fake_b
