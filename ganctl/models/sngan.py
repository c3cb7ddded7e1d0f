"""SNGAN (Miyato et al. 2018, Table 4): ResNet G with batch norm, ResNet D with spectral norm.

The paper's CIFAR-10 networks, extended by one block per doubling of resolution: G upsamples a
4x4 (or 5x5..7x7) base with ResBlock-ups; D has an optimized first block, ResBlock-downs to
twice the base, two plain ResBlocks, ReLU, global sum pooling and Dense(1). One width for all
blocks, as in the paper (256 for G, 128 for D at 32x32).
"""
from __future__ import annotations

import keras
from keras import layers

from ganctl.errors import UserError
from ganctl.models.common import output_activation, spectral_normalized
from ganctl.models.mode_coverage import MinibatchStd

# Bases from which the data's resolution is reached by doubling: 4 gives 32 (CIFAR-10), 64 and
# 128; 6 gives 48 (STL-10, the paper's other dataset); 7 gives 28 (MNIST).
MIN_BASE, MAX_BASE = 4, 7
WORKING_SIZES = "28, 32, 48, 64, 128"


def resolution_plan(image_shape) -> tuple[int, int, int]:
    """(base_height, base_width, doublings) for an (H, W, C) image shape, or a UserError."""
    if len(image_shape) != 3:
        raise UserError(f"sngan needs image data of shape (height, width, channels) at a "
                        f"resolution such as 32x32, but the dataset gives shape "
                        f"{tuple(image_shape)}; use model=mlp for ring/grid.")
    height, width = int(image_shape[0]), int(image_shape[1])
    base_height, base_width, doublings = height, width, 0
    while (base_height % 2 == 0 and base_width % 2 == 0
           and base_height // 2 >= MIN_BASE and base_width // 2 >= MIN_BASE):
        base_height, base_width, doublings = base_height // 2, base_width // 2, doublings + 1
    # At least two doublings, so that D has a downsampling block before its two plain ones.
    if doublings < 2 or max(base_height, base_width) > MAX_BASE:
        raise UserError(f"sngan cannot be built for {height}x{width} images: its resolution must "
                        f"be a {MIN_BASE}x{MIN_BASE} to {MAX_BASE}x{MAX_BASE} base doubled at "
                        f"least twice, e.g. {WORKING_SIZES}. Resize the images "
                        f"(dataset.resolution=64 for a folder dataset) or use model=dcgan.")
    return base_height, base_width, doublings


def _generator_block(x, channels: int, batch_norm: bool, name: str, output_bias: bool = True):
    """ResBlock up: [BN, ReLU, upsample, conv3x3, BN, ReLU, conv3x3] + [upsample, conv1x1].

    output_bias=False for a block whose sum goes straight into batch norm, which cancels the
    output convs' biases (they would only ever get rounding noise as gradient).
    """
    h = x
    if batch_norm:
        h = layers.BatchNormalization(name=f"{name}_bn1")(h)
    h = layers.ReLU(name=f"{name}_relu1")(h)
    h = layers.UpSampling2D(2, interpolation="nearest", name=f"{name}_up")(h)
    # A bias right before batch norm is cancelled by its mean subtraction.
    h = layers.Conv2D(channels, 3, padding="same", use_bias=not batch_norm, name=f"{name}_conv1")(h)
    if batch_norm:
        h = layers.BatchNormalization(name=f"{name}_bn2")(h)
    h = layers.ReLU(name=f"{name}_relu2")(h)
    h = layers.Conv2D(channels, 3, padding="same", use_bias=output_bias, name=f"{name}_conv2")(h)
    shortcut = layers.UpSampling2D(2, interpolation="nearest", name=f"{name}_sc_up")(x)
    shortcut = layers.Conv2D(channels, 1, use_bias=output_bias, name=f"{name}_sc_conv")(shortcut)
    return layers.Add(name=name)([h, shortcut])


def build_generator(*, z_dim: int, image_shape, num_classes: int = 0, bounded: bool = True,
                    width: int = 256, batch_norm: bool = True) -> keras.Model:
    """z -> Dense(base*base*width) -> ResBlock-ups -> BN -> ReLU -> conv3x3 -> tanh.

    Unconditional: num_classes is part of the common builder signature and not used.
    """
    base_height, base_width, doublings = resolution_plan(image_shape)

    z = keras.Input(shape=(z_dim,), name="z")
    x = layers.Dense(base_height * base_width * width, name="project")(z)
    x = layers.Reshape((base_height, base_width, width), name="reshape")(x)
    for i in range(doublings):
        last = i == doublings - 1
        x = _generator_block(x, width, batch_norm, name=f"up{i + 1}",
                             output_bias=not (last and batch_norm))  # final_bn follows
    if batch_norm:
        x = layers.BatchNormalization(name="final_bn")(x)
    x = layers.ReLU(name="final_relu")(x)
    x = layers.Conv2D(int(image_shape[-1]), 3, padding="same", name="to_image")(x)
    images = layers.Activation(output_activation(bounded), name="output")(x)
    return keras.Model(z, images, name="generator")


def _discriminator_block(x, channels: int, downsample: bool, first: bool, spectral_norm: bool,
                         name: str):
    """ResBlock (down): [ReLU, conv3x3, ReLU, conv3x3, (avgpool)] + shortcut.

    The first ("optimized") block has no ReLU before its first conv, which would only clip the
    raw image, and pools its shortcut before the 1x1 conv, which is cheaper and equivalent.
    """
    def conv(h, kernel_size, suffix):
        return spectral_normalized(layers.Conv2D(channels, kernel_size, padding="same",
                                                 name=f"{name}_{suffix}"), spectral_norm)(h)

    h = x if first else layers.ReLU(name=f"{name}_relu1")(x)
    h = conv(h, 3, "conv1")
    h = layers.ReLU(name=f"{name}_relu2")(h)
    h = conv(h, 3, "conv2")
    if downsample:
        h = layers.AveragePooling2D(2, name=f"{name}_pool")(h)
    shortcut = x
    if first:
        shortcut = conv(layers.AveragePooling2D(2, name=f"{name}_sc_pool")(x), 1, "sc_conv")
    elif downsample or x.shape[-1] != channels:
        shortcut = conv(x, 1, "sc_conv")
        if downsample:
            shortcut = layers.AveragePooling2D(2, name=f"{name}_sc_pool")(shortcut)
    return layers.Add(name=name)([h, shortcut])


def build_discriminator(*, image_shape, num_classes: int = 0, width: int = 128,
                        spectral_norm: bool = True, minibatch_std: bool = False) -> keras.Model:
    """(H, W, C) images -> ResBlocks down to twice the base -> 2 ResBlocks -> sum -> Dense(1)."""
    base_height, base_width, doublings = resolution_plan(image_shape)

    images = keras.Input(shape=tuple(int(d) for d in image_shape), name="images")
    x = _discriminator_block(images, width, downsample=True, first=True,
                             spectral_norm=spectral_norm, name="down1")
    for i in range(2, doublings):
        x = _discriminator_block(x, width, downsample=True, first=False,
                                 spectral_norm=spectral_norm, name=f"down{i}")
    for i in (1, 2):
        if minibatch_std and i == 2:  # before the last block (Karras et al.)
            x = MinibatchStd(name="minibatch_std")(x)
        x = _discriminator_block(x, width, downsample=False, first=False,
                                 spectral_norm=spectral_norm, name=f"block{i}")
    x = layers.ReLU(name="final_relu")(x)
    # Global sum pooling (the paper's), written as mean * area so the model needs no Lambda
    # layer and loads with keras.saving's safe_mode.
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    x = layers.Rescaling(4 * base_height * base_width, name="sum_pool")(x)
    logits = spectral_normalized(layers.Dense(1, name="logits"), spectral_norm)(x)
    return keras.Model(images, logits, name="discriminator")
