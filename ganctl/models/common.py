"""Checks and small pieces shared by the model builders."""
from __future__ import annotations

import keras

from ganctl.errors import UserError


def check_network(where: str, width: int, depth: int | None = None, dropout: float = 0.0) -> None:
    """UserError for sizes no network can have; `where` is the config path, e.g. model.generator."""
    if isinstance(width, bool) or not isinstance(width, int) or width < 1:
        raise UserError(f"{where}.width={width} is invalid: it must be an integer >= 1 "
                        "(units per hidden layer for mlp, channels of the outermost conv for dcgan).")
    if depth is not None and (isinstance(depth, bool) or not isinstance(depth, int) or depth < 1):
        raise UserError(f"{where}.depth={depth} is invalid: it is the number of hidden layers and "
                        "must be an integer >= 1.")
    if not 0.0 <= dropout < 1.0:
        raise UserError(f"{where}.dropout={dropout} is invalid: it is the fraction of units "
                        "dropped and must be in [0, 1); 0 disables dropout.")


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
