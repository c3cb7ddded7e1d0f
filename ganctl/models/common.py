"""Checks and small pieces shared by the model builders."""
from __future__ import annotations

import keras



def spectral_normalized(layer, enabled: bool = True):
    """`layer` wrapped in spectral normalisation (Miyato et al. 2018) when enabled, else as is.

    Keras' wrapper writes W / sigma(W) back into the kernel on each training call (a projection
    after every update, where the paper differentiates through W / sigma(W)). Its own float32
    dtype keeps that write in float32 under a mixed policy; with the policy's bfloat16 it
    rounded the stored kernel to bfloat16 on each call, wiping out small optimizer updates.
    """
    if not enabled:
        return layer
    return keras.layers.SpectralNormalization(layer, dtype="float32", name=f"{layer.name}_sn")


def output_activation(bounded: bool) -> str:
    """tanh for images scaled to [-1, 1]; linear for points in raw coordinates."""
    return "tanh" if bounded else "linear"


def is_conditional(model) -> bool:
    """A class-conditional network takes two inputs: (z, labels) for G, (images, labels) for D."""
    return len(model.inputs) == 2


@keras.saving.register_keras_serializable(package="ganctl")
class Dropout(keras.layers.Dropout):
    """Keras' Dropout, except that on N replicas (train.strategy) each replica applies its rows
    of the mask one device would draw for the global batch; stock Dropout would give every
    replica the same mask, since they share the seed state."""

    def call(self, inputs, training=False):
        import tensorflow as tf

        from ganctl.replicas import replica_rows

        context = tf.distribute.get_replica_context()
        if not training or self.rate == 0 or context is None or context.num_replicas_in_sync == 1:
            return super().call(inputs, training=training)
        keep = replica_rows(lambda shape: keras.random.dropout(
            keras.ops.ones(shape, inputs.dtype), self.rate, seed=self.seed_generator),
            keras.ops.shape(inputs))
        return inputs * keep


def instance_norm(name: str, scale: bool = True, center: bool = True):
    """Instance normalisation: each image's channels normalised on their own, so training and
    sampling behave alike at any batch size (the pix2pix and CycleGAN authors' `--norm instance`;
    their batch norm at batch size 1 is the same thing). `scale=False`: no learned gain;
    `center=False`: no learned shift."""
    return keras.layers.GroupNormalization(groups=-1, epsilon=1e-5, scale=scale, center=center,
                                           name=name)
