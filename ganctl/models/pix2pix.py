"""pix2pix (Isola et al. 2017): a U-Net generator from image to image, judged by a PatchGAN on
the input and output together (ganctl/models/patchgan.py)."""
from __future__ import annotations

import keras
from keras import layers

from ganctl.errors import UserError
from ganctl.models.common import Dropout, instance_norm
from ganctl.models.dcgan import _up
from ganctl.models.patchgan import KERNEL_SIZE, LEAKY_SLOPE

MAX_DOWNS = 8          # the authors' unet_256: 256 -> 1x1 in 8 halvings
DROPOUT_BLOCKS = 3     # decoder blocks next to the bottleneck that drop units (their noise)


def unet_downs(image_shape) -> int:
    """Halvings of the U-Net for this size: down to 1x1, at most MAX_DOWNS; a UserError when
    the size does not halve evenly that often."""
    height, width = int(image_shape[0]), int(image_shape[1])
    downs = min(MAX_DOWNS, min(height, width).bit_length() - 1)
    if downs < 4 or height % 2 ** downs or width % 2 ** downs:
        raise UserError(f"pix2pix's U-Net cannot be built for {height}x{width} images: it halves "
                        f"them {downs} times, so height and width must be multiples of "
                        f"{2 ** downs} and at least 16. Set dataset.resolution to a power of two "
                        "such as 32, 64, 128 or 256.")
    return downs


def build_generator(*, image_shape, width: int = 64, dropout: float = 0.5,
                    upsampling: str = "transposed") -> keras.Model:
    """(H, W, C) image of domain A -> (H, W, C) image of domain B in [-1, 1].

    Encoder: 4x4 stride-2 convs, LeakyReLU 0.2, instance norm (not on the first or innermost).
    Decoder: ReLU, a 2x up-sampling (transposed conv, or resize + 3x3 conv), instance norm, and
    dropout in the DROPOUT_BLOCKS blocks next to the bottleneck; each block is joined by the skip
    from the encoder block of the same size. Fully convolutional: once built it accepts any size
    that is a multiple of 2 ** halvings.
    """
    downs = unet_downs(image_shape)
    channels = int(image_shape[-1])
    inputs = keras.Input(shape=(None, None, channels), name="images")
    skips, x = [], inputs
    for level in range(downs):
        if level > 0:
            x = layers.LeakyReLU(negative_slope=LEAKY_SLOPE, name=f"down{level + 1}_lrelu")(x)
        innermost = level == downs - 1
        x = layers.Conv2D(width * min(2 ** level, 8), KERNEL_SIZE, strides=2, padding="same",
                          use_bias=level == 0 or innermost, name=f"down{level + 1}")(x)
        if 0 < level < downs - 1:
            x = instance_norm(f"down{level + 1}_norm")(x)
        skips.append(x)
    skips.pop()  # the bottleneck is x itself
    for block, level in enumerate(range(downs - 2, -1, -1)):
        name = f"up{block + 1}"
        x = layers.ReLU(name=f"{name}_relu")(x)
        x = _up(x, width * min(2 ** level, 8), upsampling, use_bias=False, name=name)
        x = instance_norm(f"{name}_norm")(x)
        if block < DROPOUT_BLOCKS and dropout > 0:
            x = Dropout(dropout, name=f"{name}_dropout")(x)
        x = layers.Concatenate(name=f"{name}_skip")([x, skips[level]])
    x = layers.ReLU(name="to_image_relu")(x)
    x = _up(x, channels, upsampling, use_bias=True, name="to_image")
    outputs = layers.Activation("tanh", name="output", dtype="float32")(x)
    return keras.Model(inputs, outputs, name="generator")


def build_discriminator(*, image_shape, width: int = 64, depth: int = 3) -> keras.Model:
    """The 70x70 PatchGAN judging an input and its output (or target) concatenated on channels,
    so D sees whether B fits A, not only whether B looks real."""
    from ganctl.models.patchgan import build_discriminator as patchgan

    height, width_px, channels = (int(d) for d in image_shape)
    return patchgan(image_shape=(height, width_px, 2 * channels), width=width, depth=depth)
