"""Fully connected G and D: for the 2-D mixtures, and for flattened images."""
from __future__ import annotations

import math

import keras
from keras import layers

from ganctl.models.common import Dropout, output_activation, spectral_normalized
from ganctl.models.mode_coverage import MinibatchStd


def build_generator(*, z_dim: int, image_shape, num_classes: int = 0, bounded: bool = True,
                    width: int = 64, depth: int = 2, batch_norm: bool = False) -> keras.Model:
    """z (B, z_dim) -> depth x [Dense -> (BN) -> ReLU] -> Dense -> tanh/linear -> image_shape.

    Unconditional: num_classes is part of the common builder signature and not used.
    """
    image_shape = tuple(int(d) for d in image_shape)
    z = keras.Input(shape=(z_dim,), name="z")
    x = z
    for i in range(depth):
        # A bias right before batch norm is cancelled by its mean subtraction.
        x = layers.Dense(width, use_bias=not batch_norm, name=f"dense{i}")(x)
        if batch_norm:
            x = layers.BatchNormalization(name=f"dense{i}_bn")(x)
        x = layers.ReLU(name=f"dense{i}_relu")(x)
    x = layers.Dense(math.prod(image_shape), name="to_output")(x)
    x = layers.Activation(output_activation(bounded), name="output")(x)
    images = layers.Reshape(image_shape, name="reshape")(x)
    return keras.Model(z, images, name="generator")


def build_discriminator(*, image_shape, num_classes: int = 0, width: int = 64, depth: int = 2,
                        dropout: float = 0.0, spectral_norm: bool = False,
                        minibatch_std: bool = False) -> keras.Model:
    """Flatten -> depth x [Dense -> LeakyReLU(0.2) -> (Dropout)] -> Dense(1) raw logits.

    No batch norm: it couples the examples of a batch, which the gradient penalty forbids.
    """
    images = keras.Input(shape=tuple(int(d) for d in image_shape), name="images")
    x = layers.Flatten(name="flatten")(images)
    for i in range(depth):
        if minibatch_std and i == depth - 1:  # before the last hidden layer (Karras et al.)
            x = MinibatchStd(name="minibatch_std")(x)
        x = spectral_normalized(layers.Dense(width, name=f"dense{i}"), spectral_norm)(x)
        x = layers.LeakyReLU(negative_slope=0.2, name=f"dense{i}_lrelu")(x)
        if dropout > 0:
            x = Dropout(dropout, name=f"dense{i}_dropout")(x)
    logits = spectral_normalized(layers.Dense(1, name="logits"), spectral_norm)(x)
    return keras.Model(images, logits, name="discriminator")
