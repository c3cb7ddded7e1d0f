"""One signature for every GAN loss, with penalties kept apart (compare_gan / TF-GAN style)."""
from __future__ import annotations

import abc


class Loss(abc.ABC):
    """Pure functions of the discriminator's raw outputs (logits / critic values).

    discriminator_loss(real_logits, fake_logits) -> scalar
    generator_loss(fake_logits, real_logits=None) -> scalar: real_logits (D's outputs on a real
        batch, row i paired with fake row i) only for losses with generator_needs_real.
    penalty(discriminator, real_images, fake_images, seed_generator, step) -> scalar: the loss's
        own penalty (own_penalty; WGAN-GP's gradient penalty) plus the R1 penalty of any loss
        (on steps that are multiples of r1_every).
    probability(logits) -> what is logged as D(x): sigmoid for the BCE losses, identity otherwise.

    The constructor takes the arguments every loss takes, so a subclass needs no __init__
    unless it adds a knob (WGAN-GP's gp_weight). Its signature is what a loss YAML may set:
    registry.build refuses a key the class does not take, and checks the values against
    LossConfig's rules before calling it.
    """

    uses_sigmoid = False
    # D's output between real and fake (train.health's accuracy); None: no fixed one (WGAN)
    boundary = 0.0
    gp_weight = 0.0     # only WGAN-GP has a gradient penalty; read by the tests of every loss
    # G's loss reads D's outputs on real data too (relativistic losses): the step then runs D on
    # the real batch in G's update as well, which the other losses skip.
    generator_needs_real = False

    def __init__(self, d_steps_per_g_step: int = 1, g_steps_per_d_step: int = 1,
                 r1_weight: float = 0.0, r1_every: int = 1):
        self.d_steps_per_g_step = d_steps_per_g_step
        self.g_steps_per_d_step = int(g_steps_per_d_step)
        self.r1_weight = float(r1_weight)
        self.r1_every = int(r1_every)

    @abc.abstractmethod
    def discriminator_loss(self, real_logits, fake_logits):
        """Scalar loss D minimises, from D's raw outputs on a real and a fake batch."""

    @abc.abstractmethod
    def generator_loss(self, fake_logits, real_logits=None):
        """Scalar loss G minimises, from D's raw outputs on a fake batch (and a real one)."""

    def penalty(self, discriminator, real_images, fake_images, seed_generator, step=None):
        """`step`: the training step (a tensor) that r1_every counts; None: R1 at every call."""
        own, r1 = self.penalty_parts(discriminator, real_images, fake_images, seed_generator, step)
        return own + r1

    def penalty_parts(self, discriminator, real_images, fake_images, seed_generator, step=None):
        """(the loss's own penalty, the R1 term added at this step): kept apart so the step can
        report lazy R1 (r1_every > 1) as the penalty it stands for, not as 0 or k x R1."""
        own = self.own_penalty(discriminator, real_images, fake_images, seed_generator)
        if self.r1_weight == 0:
            return own, 0.0
        return own, lazy_r1_penalty(discriminator, real_images, self.r1_weight, self.r1_every,
                                    step)

    def own_penalty(self, discriminator, real_images, fake_images, seed_generator):
        return 0.0

    def probability(self, logits):
        from keras import ops

        return ops.sigmoid(logits) if self.uses_sigmoid else logits


def input_gradients(discriminator, images):
    """grad_x D(x) for each of D's verdicts, flattened to (verdicts, features): one row per
    example, or per pack of model.discriminator.pack examples (PacGAN).

    The one gradient both penalties take: R1 at real images, WGAN-GP at interpolates.
    """
    import tensorflow as tf
    from keras import ops

    images = ops.cast(images, "float32")
    with tf.GradientTape() as tape:
        tape.watch(images)
        # Summing is safe: each example's output depends only on that example (no batch norm:
        # validate.py refuses it with either penalty, and WGAN-GP forbids it anyway).
        verdicts = discriminator(images, training=True)
        outputs = ops.sum(ops.cast(verdicts, "float32"))
    gradients = tape.gradient(outputs, images)
    return ops.reshape(gradients, (ops.shape(verdicts)[0], -1))


def r1_penalty(discriminator, real_images, r1_weight: float):
    """R1 (Mescheder et al. 2018): r1_weight / 2 * E ||grad_x D(x)||^2 on real images only.

    A zero-centred penalty on the data: Mescheder et al. show it makes GAN training locally
    convergent, which unregularised and WGAN-GP training are not in general.
    """
    from keras import ops

    gradients = input_gradients(discriminator, real_images)
    return 0.5 * r1_weight * ops.mean(ops.sum(ops.square(gradients), axis=1))


def lazy_r1_penalty(discriminator, real_images, r1_weight: float, every: int, step):
    """R1 at `every` x the weight on steps that are multiples of `every`, else 0 (StyleGAN2's
    lazy regularisation): the same expected penalty, its second-order pass on 1/every of steps."""
    if every == 1 or step is None:
        return r1_penalty(discriminator, real_images, r1_weight)
    import tensorflow as tf

    # tf.cond runs one branch, so the other steps skip R1's input-gradient pass entirely.
    return tf.cond(tf.equal(step % every, 0),
                   lambda: r1_penalty(discriminator, real_images, r1_weight * every),
                   lambda: tf.zeros((), "float32"))
