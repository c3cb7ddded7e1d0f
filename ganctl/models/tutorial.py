"""The TensorFlow DCGAN tutorial's networks (tensorflow.org/tutorials/generative/dcgan), layer for layer.

At 28x28x1 with width=64 this is exactly the tutorial: G 2,330,944 parameters, D 212,865. Other
sizes keep the same stack: the base grid is H/4 x W/4 and the last layer emits C channels.
"""
from __future__ import annotations

import keras
from keras import layers

from ganctl.errors import UserError
from ganctl.models.common import Dropout, output_activation
from ganctl.models.mode_coverage import MinibatchStd

KERNEL_SIZE = 5


def _base_grid(image_shape) -> tuple[int, int]:
    """(H/4, W/4): two stride-2 layers separate the base grid from the image, as in the tutorial."""
    if len(image_shape) != 3:
        raise UserError(f"tutorial_dcgan needs image data of shape (height, width, channels), but "
                        f"the dataset gives shape {tuple(image_shape)}; use model=mlp for ring/grid.")
    height, width = int(image_shape[0]), int(image_shape[1])
    if height % 4 or width % 4:
        raise UserError(f"tutorial_dcgan cannot be built for {height}x{width} images: its two "
                        "stride-2 layers need height and width divisible by 4 (the tutorial uses "
                        "28x28). Resize the images (dataset.resolution=32 for a folder dataset) "
                        "or use model=dcgan.")
    return height // 4, width // 4


def build_generator(*, z_dim: int, image_shape, bounded: bool = True,
                    width: int = 64) -> keras.Model:
    """z -> Dense(7*7*4w) -> BN -> LeakyReLU -> ConvT 2w (stride 1) -> ConvT w -> ConvT C (tanh).

    No biases anywhere (the tutorial's use_bias=False); the batch norm after each layer cancels them.
    """
    base_height, base_width = _base_grid(image_shape)
    z = keras.Input(shape=(z_dim,), name="z")
    x = layers.Dense(base_height * base_width * 4 * width, use_bias=False, name="project")(z)
    x = layers.BatchNormalization(name="project_bn")(x)
    x = layers.LeakyReLU(negative_slope=0.3, name="project_lrelu")(x)
    x = layers.Reshape((base_height, base_width, 4 * width), name="reshape")(x)
    for name, channels, stride in (("up1", 2 * width, 1), ("up2", width, 2)):
        x = layers.Conv2DTranspose(channels, KERNEL_SIZE, strides=stride, padding="same",
                                   use_bias=False, name=name)(x)
        x = layers.BatchNormalization(name=f"{name}_bn")(x)
        x = layers.LeakyReLU(negative_slope=0.3, name=f"{name}_lrelu")(x)
    x = layers.Conv2DTranspose(int(image_shape[-1]), KERNEL_SIZE, strides=2, padding="same",
                               use_bias=False, name="to_image")(x)
    # float32 under mixed precision too (the Keras mixed-precision guide's advice for outputs).
    images = layers.Activation(output_activation(bounded), dtype="float32", name="output")(x)
    return keras.Model(z, images, name="generator")


def build_discriminator(*, image_shape, width: int = 64, dropout: float = 0.3,
                        minibatch_std: bool = False) -> keras.Model:
    """images -> Conv w (stride 2) -> LeakyReLU -> Dropout -> Conv 2w -> ... -> Dense(1) logits."""
    _base_grid(image_shape)
    images = keras.Input(shape=tuple(int(d) for d in image_shape), name="images")
    x = images
    for name, channels in (("down1", width), ("down2", 2 * width)):
        if minibatch_std and name == "down2":  # before the last block (Karras et al.)
            x = MinibatchStd(name="minibatch_std")(x)
        x = layers.Conv2D(channels, KERNEL_SIZE, strides=2, padding="same", name=name)(x)
        x = layers.LeakyReLU(negative_slope=0.3, name=f"{name}_lrelu")(x)
        if dropout > 0:
            x = Dropout(dropout, name=f"{name}_dropout")(x)
    x = layers.Flatten(name="flatten")(x)
    logits = layers.Dense(1, dtype="float32", name="logits")(x)  # float32 logits for the loss
    return keras.Model(images, logits, name="discriminator")
