"""The compiled step of image-to-image translation models, one per `model.translation.kind`.

pix2pix (Isola et al. 2017): one G forward per step; D learns from (a, b) against (a, G(a))
with its loss halved (d_loss_scale); then G learns to fool the updated D on that same G(a),
plus l1_weight * |G(a) - b|. The adversarial terms are the loss group's (default ns).
"""
from __future__ import annotations

import tensorflow as tf
from keras import ops

from ganctl.replicas import per_replica_loss, replica_slice
from ganctl.training.cyclegan_step import make_cyclegan_step
from ganctl.training.steps import compile_step

# What a translation step returns, all float32: the noise -> image step's values, plus L1.
VALUES = ("d_loss", "g_loss", "gp", "d_real", "d_fake", "l1")


def make_translation_step(state):
    """A tf.function taking (a, b) batches of `steps_per_call * B` images each."""
    return STEPS[state.translation.kind](state)


def pix2pix_d_loss(loss, translation, real_logits, fake_logits):
    """D's adversarial loss times d_loss_scale: the paper halves it, so D learns slower than G."""
    return translation.d_loss_scale * loss.discriminator_loss(real_logits, fake_logits)


def pix2pix_g_loss(loss, translation, fake_logits, fake_b, real_b, real_logits=None):
    """(G's loss, its L1 term): adversarial + l1_weight * mean |G(a) - b|."""
    l1 = ops.mean(ops.abs(ops.cast(fake_b, "float32") - ops.cast(real_b, "float32")))
    return loss.generator_loss(fake_logits, real_logits) + translation.l1_weight * l1, l1


def make_pix2pix_step(state):
    generator, discriminator = state.generator, state.discriminator
    g_optimizer, d_optimizer = state.optimizers["generator"], state.optimizers["discriminator"]
    loss, translation, strategy = state.loss, state.translation, state.strategy
    seed_generator = state.seed_generator

    def judge(a, b):
        # D sees the input with the candidate output: whether b fits a, not only looks real.
        return discriminator(ops.concatenate([a, ops.cast(b, a.dtype)], -1), training=True)

    def replica_update(real_a, real_b):
        real_a, real_b = replica_slice(real_a), replica_slice(real_b)
        with tf.GradientTape() as g_tape:
            fake_b = generator(real_a, training=True)
            with g_tape.stop_recording():  # D's update is no part of G's gradient
                with tf.GradientTape() as d_tape:
                    real_logits = judge(real_a, real_b)
                    fake_logits_d = judge(real_a, tf.stop_gradient(fake_b))
                    d_loss = pix2pix_d_loss(loss, translation, real_logits, fake_logits_d)
                    # A penalty (wgan_gp, r1_weight) sees D as a function of the output, at
                    # this input.
                    penalty = loss.penalty(lambda b, training=True: judge(real_a, b), real_b,
                                           tf.stop_gradient(fake_b), seed_generator,
                                           state.step)
                    d_scaled = d_optimizer.scale_loss(per_replica_loss(d_loss + penalty,
                                                                       strategy))
                d_grads = d_tape.gradient(d_scaled, discriminator.trainable_variables)
                d_optimizer.apply(d_grads, discriminator.trainable_variables)
            fake_logits_g = judge(real_a, fake_b)  # through the updated D
            real_logits_g = judge(real_a, real_b) if loss.generator_needs_real else None
            g_loss, l1 = pix2pix_g_loss(loss, translation, fake_logits_g, fake_b, real_b,
                                        real_logits_g)
            g_scaled = g_optimizer.scale_loss(per_replica_loss(g_loss, strategy))
        g_grads = g_tape.gradient(g_scaled, generator.trainable_variables)
        g_optimizer.apply(g_grads, generator.trainable_variables)
        return {"d_loss": ops.cast(d_loss, "float32"),
                "g_loss": ops.cast(g_loss, "float32"),
                "gp": ops.cast(penalty, "float32"),
                "d_real": ops.mean(ops.cast(loss.probability(real_logits), "float32")),
                "d_fake": ops.mean(ops.cast(loss.probability(fake_logits_d), "float32")),
                "l1": ops.cast(l1, "float32")}

    return compile_step(state, replica_update, VALUES)


# model.translation.kind -> the function that makes its step from the training state.
STEPS = {"pix2pix": make_pix2pix_step, "cyclegan": make_cyclegan_step}
