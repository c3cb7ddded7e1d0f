"""One signature for every GAN loss, with penalties kept apart (compare_gan / TF-GAN style)."""
from __future__ import annotations


class Loss:
    """Pure functions of the discriminator's raw outputs (logits / critic values).

    discriminator_loss(real_logits, fake_logits) -> scalar
    generator_loss(fake_logits) -> scalar
    penalty(discriminator, real_images, fake_images, seed_generator) -> scalar (0 unless overridden)
    probability(logits) -> what is logged as D(x): sigmoid for the BCE losses, identity otherwise.
    """

    uses_sigmoid = False

    def __init__(self, d_steps_per_g_step: int = 1, gp_weight: float = 0.0):
        self.d_steps_per_g_step = d_steps_per_g_step
        self.gp_weight = gp_weight

    def discriminator_loss(self, real_logits, fake_logits):
        raise NotImplementedError

    def generator_loss(self, fake_logits):
        raise NotImplementedError

    def penalty(self, discriminator, real_images, fake_images, seed_generator):
        return 0.0

    def probability(self, logits):
        from keras import ops

        return ops.sigmoid(logits) if self.uses_sigmoid else logits
