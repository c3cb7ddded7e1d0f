"""The compiled training step: `d_steps_per_g_step` D-updates, one G-update, the EMA update."""
from __future__ import annotations

import keras
import tensorflow as tf
from keras import ops


def has_batch_norm(model: keras.Model) -> bool:
    return any(isinstance(layer, keras.layers.BatchNormalization) for layer in model.layers)


def make_train_step(*, generator, discriminator, ema_generator, loss, g_optimizer, d_optimizer,
                    seed_generator, z_dim: int, ema_decay: float, step, first_nonfinite_step,
                    jit_compile: bool = False):
    """A tf.function taking one batch of `d_steps_per_g_step * B` real images.

    All state lives in variables (step counter, RNG, optimizers), so the function has no Python
    side effects and the loop only syncs with the device when it logs.
    """
    d_steps = loss.d_steps_per_g_step
    # Batch norm would mix real and fake statistics; without it one D call on both halves is
    # equivalent and cheaper.
    joint_d_call = not has_batch_norm(discriminator)

    def discriminator_update(real_images):
        batch_size = ops.shape(real_images)[0]
        z = keras.random.normal((batch_size, z_dim), seed=seed_generator)
        fake_images = generator(z, training=True)  # outside the tape: no gradient into G here
        with tf.GradientTape() as tape:
            if joint_d_call:
                logits = discriminator(ops.concatenate([real_images, fake_images], 0), training=True)
                real_logits, fake_logits = logits[:batch_size], logits[batch_size:]
            else:
                real_logits = discriminator(real_images, training=True)
                fake_logits = discriminator(fake_images, training=True)
            d_loss = loss.discriminator_loss(real_logits, fake_logits)
            penalty = loss.penalty(discriminator, real_images, fake_images, seed_generator)
            total = d_loss + penalty
        grads = tape.gradient(total, discriminator.trainable_variables)
        d_optimizer.apply(grads, discriminator.trainable_variables)
        return d_loss, penalty, real_logits, fake_logits

    def generator_update(batch_size):
        z = keras.random.normal((batch_size, z_dim), seed=seed_generator)
        with tf.GradientTape() as tape:
            fake_logits = discriminator(generator(z, training=True), training=True)
            g_loss = loss.generator_loss(fake_logits)
        grads = tape.gradient(g_loss, generator.trainable_variables)
        g_optimizer.apply(grads, generator.trainable_variables)
        return g_loss

    def update_ema():
        # Warm-up (TF's num_updates rule) so early samples are not dominated by the random init.
        t = ops.cast(step, "float32")
        decay = ops.minimum(ema_decay, (1.0 + t) / (10.0 + t))
        for ema_weight, weight in zip(ema_generator.weights, generator.weights):
            if weight.trainable:
                ema_weight.assign(decay * ema_weight + (1.0 - decay) * weight)
            else:  # batch-norm statistics are copied, not averaged
                ema_weight.assign(weight)

    @tf.function(jit_compile=jit_compile, reduce_retracing=True)
    def train_step(real_batch):
        real_chunks = ops.split(real_batch, d_steps, axis=0) if d_steps > 1 else [real_batch]
        for real_images in real_chunks:
            d_loss, penalty, real_logits, fake_logits = discriminator_update(real_images)
        g_loss = generator_update(ops.shape(real_chunks[0])[0])
        if ema_generator is not None:
            update_ema()
        step.assign_add(1)
        finite = tf.math.is_finite(d_loss) & tf.math.is_finite(g_loss) & tf.math.is_finite(
            ops.cast(penalty, "float32"))
        first_nonfinite_step.assign(tf.where(
            (first_nonfinite_step < 0) & ~finite, step, first_nonfinite_step))
        return {
            "d_loss": d_loss,
            "g_loss": g_loss,
            "gp": ops.cast(penalty, "float32"),
            "d_real": ops.mean(loss.probability(real_logits)),
            "d_fake": ops.mean(loss.probability(fake_logits)),
        }

    return train_step


def generate(generator, z, batch_size: int = 500):
    """G(z) in inference mode, in batches so memory stays bounded."""
    import numpy as np

    parts = [ops.convert_to_numpy(generator(z[i:i + batch_size], training=False))
             for i in range(0, len(z), batch_size)]
    return np.concatenate(parts, 0)
