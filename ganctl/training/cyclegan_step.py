"""CycleGAN's training step (Zhu et al. 2017): both generators on the full objective, then each
discriminator on real images of its domain and a fake drawn from its history pool.

Networks by name in the training state: "generator" (A -> B), "generator_ba" (B -> A),
"discriminator" (judges domain B, as pix2pix's does), "discriminator_a" (judges domain A);
`state.pools` holds each discriminator's pool under the same name.
"""
from __future__ import annotations

import tensorflow as tf
from keras import ops

from ganctl.replicas import per_replica_loss, replica_slice
from ganctl.training.steps import compile_step

CYCLEGAN_NETWORKS = ("generator", "generator_ba", "discriminator", "discriminator_a")
# What the step reports besides VALUES: the objective's terms (ganctl/losses/cyclegan.py).
CYCLEGAN_TERMS = ("adversarial_ab", "adversarial_ba", "cycle_a", "cycle_b", "identity_a",
                  "identity_b")
VALUES = ("d_loss", "g_loss", "gp", "d_real", "d_fake", *CYCLEGAN_TERMS)


def make_cyclegan_step(state):
    """The compiled step (training/steps.py's compile_step) around the update below, with the
    state's objective (losses/cyclegan.py, weighted by model.translation)."""
    return compile_step(state, make_cyclegan_update(state, state.loss), VALUES)


def make_cyclegan_update(state, objective):
    """(real_a, real_b) -> values: the update of all four networks for one batch of each domain.

    The authors' order: the generators step first, on one total loss whose gradient reaches each
    generator through both cycles; the discriminators then step on the fakes of that same
    forward pass (through the pools), which carry no gradient back into the generators.
    """
    networks, optimizers, pools, strategy = (state.networks, state.optimizers, state.pools,
                                             state.strategy)
    generator_ab, generator_ba, discriminator_b, discriminator_a = (
        networks[name] for name in CYCLEGAN_NETWORKS)

    def apply(name, tape, scaled):
        variables = networks[name].trainable_variables
        optimizers[name].apply(tape.gradient(scaled[name], variables), variables)

    def scale(loss, *names):
        # scale_loss is the identity except under a LossScaleOptimizer (mixed_float16).
        return {name: optimizers[name].scale_loss(per_replica_loss(loss, strategy))
                for name in names}

    def judge(name, discriminator, real_images, fake_images):
        fake_images = tf.stop_gradient(pools[name].query(fake_images))
        with tf.GradientTape() as tape:
            real_logits = discriminator(real_images, training=True)
            fake_logits = discriminator(fake_images, training=True)
            loss = objective.discriminator_loss(real_logits, fake_logits)
            scaled = scale(loss, name)
        apply(name, tape, scaled)
        return loss, real_logits, fake_logits

    def update(real_a, real_b):
        real_a, real_b = replica_slice(real_a), replica_slice(real_b)
        with tf.GradientTape(persistent=True) as tape:
            total, parts, fake_a, fake_b = objective.generators_loss(
                generator_ab, generator_ba, discriminator_a, discriminator_b, real_a, real_b)
            scaled = scale(total, "generator", "generator_ba")
        apply("generator", tape, scaled)
        apply("generator_ba", tape, scaled)
        del tape
        d_loss_b, real_logits, fake_logits = judge("discriminator", discriminator_b, real_b, fake_b)
        d_loss_a, _, _ = judge("discriminator_a", discriminator_a, real_a, fake_a)
        values = {
            "d_loss": d_loss_a + d_loss_b,
            "g_loss": total,
            "gp": tf.zeros((), "float32"),
            # What D_B makes of real B and of (pooled) translations A -> B.
            "d_real": ops.mean(ops.cast(real_logits, "float32")),
            "d_fake": ops.mean(ops.cast(fake_logits, "float32")),
        }
        zero = tf.zeros((), "float32")
        values.update({name: ops.cast(parts.get(name, zero), "float32")
                       for name in CYCLEGAN_TERMS})
        return values

    return update
