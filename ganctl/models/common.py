"""Checks and small pieces shared by the model builders."""
from __future__ import annotations

import keras
import numpy as np


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


@keras.saving.register_keras_serializable(package="ganctl")
class ResizeConv2D(keras.layers.Conv2D):
    """A nearest-neighbour 2x resize followed by this layer's 3x3 "same" conv (Odena et al. 2016),
    computed as one stride-2 transposed conv with 4x4 taps summed from the 3x3 kernel.

    The two are the same function: after a nearest 2x resize, each output pixel's 3x3 window
    covers 2x2 input pixels, so taps that land on the same input pixel add up. The transposed
    conv does 4 multiply-adds per output pixel and channel pair instead of 9, and never builds
    the 4x larger resized tensor. Kernel and bias are a Conv2D's, same shapes and names, so
    checkpoints of UpSampling2D + Conv2D restore into it.
    """

    # Row t: the 3x3 kernel's taps (along one axis) that land on tap t of the 4-tap transposed
    # conv; an output pixel 2i or 2i + 1 reads input pixels i - 1, i or i, i + 1.
    TAPS = np.array([[0, 0, 1], [0, 1, 1], [1, 1, 0], [1, 0, 0]], "float32")

    def __init__(self, filters, **kwargs):
        super().__init__(filters, **{"kernel_size": 3, "padding": "same", **kwargs})
        if (self.kernel_size, self.strides, self.dilation_rate, self.padding, self.data_format) != (
                (3, 3), (1, 1), (1, 1), "same", "channels_last"):
            raise ValueError("ResizeConv2D is a 3x3, stride-1, 'same', channels_last conv")

    def convolution_op(self, inputs, kernel):
        taps = keras.ops.cast(self.TAPS, kernel.dtype)
        # (3, 3, in, out) -> (4, 4, out, in), the layout conv_transpose takes
        summed = keras.ops.einsum("ar,bs,rsio->aboi", taps, taps, kernel)
        return keras.ops.conv_transpose(inputs, summed, strides=2, padding="same")

    def compute_output_shape(self, input_shape):
        batch, height, width, _ = input_shape
        doubled = [None if size is None else 2 * size for size in (height, width)]
        return (batch, *doubled, self.filters)
