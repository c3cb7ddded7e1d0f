"""DCGAN (Radford et al. 2016): transposed-conv G with batch norm, strided-conv D with LeakyReLU.

Depth follows the resolution: one stride-2 layer per halving of H and W down to a small base.
"""
from __future__ import annotations

import keras
from keras import layers

from ganctl.errors import UserError
from ganctl.models.common import Dropout, ResizeConv2D, output_activation, spectral_normalized
from ganctl.models.mode_coverage import MinibatchStd

# 4x4 kernels divide evenly by the stride of 2, which avoids the checkerboard pattern that
# uneven overlap of transposed convolutions produces (Odena et al. 2016).
KERNEL_SIZE = 4
MAX_BASE = 32
WORKING_SIZES = "28, 32, 64, 100, 128, 256"


def upsampling_plan(image_shape) -> tuple[int, int, int]:
    """(base_height, base_width, doublings) for an (H, W, C) image shape, or a UserError.

    H and W are halved together while both are even and the half is still >= 3, so
    28 -> 7 (2 doublings), 32 -> 4 (3), 64 -> 4 (4), 100 -> 25 (2), 128 -> 4 (5).
    """
    if len(image_shape) != 3:
        raise UserError(f"dcgan needs image data of shape (height, width, channels), but the "
                        f"dataset gives shape {tuple(image_shape)}; use model=mlp for ring/grid.")
    height, width = int(image_shape[0]), int(image_shape[1])
    base_height, base_width, doublings = height, width, 0
    while (base_height % 2 == 0 and base_width % 2 == 0
           and base_height // 2 >= 3 and base_width // 2 >= 3):
        base_height, base_width, doublings = base_height // 2, base_width // 2, doublings + 1
    if doublings == 0 or max(base_height, base_width) > MAX_BASE:
        raise UserError(f"dcgan cannot be built for {height}x{width} images: it halves height and "
                        f"width together with stride-2 layers down to a base of at most "
                        f"{MAX_BASE}x{MAX_BASE}, and {height}x{width} stops at "
                        f"{base_height}x{base_width} after {doublings} halvings. Sizes that work "
                        f"include {WORKING_SIZES}; resize the images (dataset.resolution=64 for "
                        f"a folder dataset) or use model=mlp.")
    return base_height, base_width, doublings


def _channels(width: int, level: int) -> int:
    """Channels `level` stride-2 layers away from the image: width, doubling, capped at 8x."""
    return width * min(2 ** level, 8)


def build_generator(*, z_dim: int, image_shape, num_classes: int = 0, bounded: bool = True,
                    width: int = 64, batch_norm: bool = True,
                    upsampling: str = "transposed", extra_convs: int = 0) -> keras.Model:
    """z (B, z_dim) -> Dense to the base grid -> stride-2 transposed convs -> (H, W, C) images.

    upsampling="resize": each doubling is a nearest-neighbour 2x resize and a 3x3 conv instead
    (Odena et al. 2016: no uneven overlap, so no checkerboard by construction).
    extra_convs: 3x3 stride-1 convs after each inner doubling (not the output layer), as the
    conv pairs per resolution of later generators (ProGAN, StyleGAN); 0 is Radford et al.'s G.
    Unconditional: num_classes is part of the common builder signature and not used.
    """
    z = keras.Input(shape=(z_dim,), name="z")
    images = upsample(z, image_shape, bounded=bounded, width=width, batch_norm=batch_norm,
                      upsampling=upsampling, extra_convs=extra_convs)
    return keras.Model(z, images, name="generator")


def upsample(code, image_shape, *, bounded: bool, width: int, batch_norm: bool,
             upsampling: str = "transposed", extra_convs: int = 0):
    """The generator body: a (B, features) code -> (B, H, W, C) images."""
    base_height, base_width, doublings = upsampling_plan(image_shape)
    channels = int(image_shape[-1])
    base_channels = _channels(width, doublings - 1)

    # A bias right before batch norm is cancelled by its mean subtraction.
    x = layers.Dense(base_height * base_width * base_channels, use_bias=not batch_norm,
                     name="project")(code)
    if batch_norm:
        x = layers.BatchNormalization(name="project_bn")(x)
    x = layers.ReLU(name="project_relu")(x)
    x = layers.Reshape((base_height, base_width, base_channels), name="reshape")(x)
    for level in range(doublings - 2, -1, -1):
        name = f"up{doublings - 1 - level}"
        x = _up(x, _channels(width, level), upsampling, use_bias=not batch_norm, name=name)
        x = _normalized_relu(x, batch_norm, name)
        for extra in range(1, extra_convs + 1):
            x = layers.Conv2D(_channels(width, level), 3, padding="same", use_bias=not batch_norm,
                              name=f"{name}_conv{extra}")(x)
            x = _normalized_relu(x, batch_norm, f"{name}_conv{extra}")
    # No batch norm on the output layer (Radford et al.): it would fix the images' statistics.
    x = _up(x, channels, upsampling, use_bias=True, name="to_image")
    return layers.Activation(output_activation(bounded), name="output")(x)


def _normalized_relu(x, batch_norm: bool, name: str):
    if batch_norm:
        x = layers.BatchNormalization(name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x)


def _up(x, channels: int, upsampling: str, *, use_bias: bool, name: str):
    """One 2x doubling of H and W."""
    if upsampling == "resize":
        # The identity holds the place of the UpSampling2D that ResizeConv2D absorbed: checkpoints
        # record layers by position, so runs saved before the fusion still restore.
        x = layers.Identity(name=f"{name}_resize")(x)
        return ResizeConv2D(channels, use_bias=use_bias, name=name)(x)
    return layers.Conv2DTranspose(channels, KERNEL_SIZE, strides=2, padding="same",
                                  use_bias=use_bias, name=name)(x)


def build_discriminator(*, image_shape, num_classes: int = 0, width: int = 64,
                        batch_norm: bool = False, dropout: float = 0.0,
                        spectral_norm: bool = False, minibatch_std: bool = False) -> keras.Model:
    """(H, W, C) images -> stride-2 convs down to the base grid -> Dense(1) raw logits.

    Batch norm is off by default: WGAN-GP's per-example gradient penalty forbids it.
    """
    images = keras.Input(shape=tuple(int(d) for d in image_shape), name="images")
    features = downsample(images, image_shape, width=width, batch_norm=batch_norm,
                          dropout=dropout, spectral_norm=spectral_norm,
                          minibatch_std=minibatch_std)
    logits = spectral_normalized(layers.Dense(1, name="logits"), spectral_norm)(features)
    return keras.Model(images, logits, name="discriminator")


def downsample(images, image_shape, *, width: int, batch_norm: bool, dropout: float,
               spectral_norm: bool, minibatch_std: bool = False):
    """The discriminator body: (B, H, W, C) images -> (B, features), flattened.
    minibatch_std: the minibatch-stddev feature map joins before the last conv (Karras et al.)."""
    _, _, doublings = upsampling_plan(image_shape)
    x = images
    for level in range(doublings):
        name = f"down{level + 1}"
        if minibatch_std and level == doublings - 1:
            x = MinibatchStd(name="minibatch_std")(x)
        # No batch norm on the first layer (Radford et al.): it sees the raw image statistics.
        normalise = batch_norm and level > 0
        conv = layers.Conv2D(_channels(width, level), KERNEL_SIZE, strides=2, padding="same",
                             use_bias=not normalise, name=name)
        x = spectral_normalized(conv, spectral_norm)(x)
        if normalise:
            x = layers.BatchNormalization(name=f"{name}_bn")(x)
        x = layers.LeakyReLU(negative_slope=0.2, name=f"{name}_lrelu")(x)
        if dropout > 0:
            x = Dropout(dropout, name=f"{name}_dropout")(x)
    return layers.Flatten(name="flatten")(x)
