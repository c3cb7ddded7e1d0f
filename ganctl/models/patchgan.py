"""PatchGAN discriminator (Isola et al. 2017): a fully convolutional D that judges overlapping
patches, one logit per patch. depth=3 gives the papers' 70x70 patches."""
from __future__ import annotations

import keras
from keras import layers

from ganctl.models.common import instance_norm

KERNEL_SIZE = 4
LEAKY_SLOPE = 0.2  # the papers' slope; Keras' LeakyReLU default (0.3) is the tutorials' slip


def build_discriminator(*, image_shape, width: int = 64, depth: int = 3) -> keras.Model:
    """(H, W, C) images -> (H', W', 1) raw patch logits.

    `depth` stride-2 4x4 convs, then a stride-1 conv and a 1-channel conv (the authors'
    NLayerDiscriminator). pix2pix feeds it the input and output concatenated on channels, so
    `image_shape` has both images' channels. Any spatial size works once built.
    """
    images = keras.Input(shape=(None, None, int(image_shape[-1])), name="images")
    x = images
    for level in range(depth + 1):
        stride = 2 if level < depth else 1
        x = layers.ZeroPadding2D(1, name=f"pad{level + 1}")(x)
        x = layers.Conv2D(width * min(2 ** level, 8), KERNEL_SIZE, strides=stride,
                          use_bias=level == 0, name=f"conv{level + 1}")(x)
        if level > 0:  # no normalisation on the first layer, which sees the raw images
            x = instance_norm(f"norm{level + 1}")(x)
        x = layers.LeakyReLU(negative_slope=LEAKY_SLOPE, name=f"lrelu{level + 1}")(x)
    x = layers.ZeroPadding2D(1, name="pad_logits")(x)
    logits = layers.Conv2D(1, KERNEL_SIZE, name="logits")(x)
    return keras.Model(images, logits, name="discriminator")


def receptive_field(depth: int) -> int:
    """Input pixels one patch logit sees, walking the convs back from the output."""
    field = 1
    for stride in [1, 1] + [2] * depth:  # logits, the stride-1 conv, then the stride-2 ones
        field = (field - 1) * stride + KERNEL_SIZE
    return field
