"""CycleGAN's ResNet generator (Zhu et al. 2017, after Johnson et al. 2016).

c7s1-w, d2w, d4w, `blocks` residual blocks at 4w, u2w, uw, c7s1-C: reflection padding at every
3x3 and 7x7 convolution, instance norm without a learnable scale (the authors' trainer), tanh
out. Fully convolutional, so it translates any image whose sides divide by 4.
"""
from __future__ import annotations

import keras
from keras import layers

from ganctl.errors import UserError
from ganctl.models.common import instance_norm

# The paper's rule: 9 blocks for 256x256 training images, 6 for 128x128 and below.
BLOCKS_AT_256 = 9
BLOCKS_BELOW_256 = 6


@keras.saving.register_keras_serializable(package="ganctl")
class ReflectionPadding2D(layers.Layer):
    """Pads H and W by mirroring the image (no zero border for the convs to see as an edge)."""

    def __init__(self, padding: int, **kwargs):
        super().__init__(**kwargs)
        self.padding = padding

    def call(self, inputs):
        p = self.padding
        return keras.ops.pad(inputs, ((0, 0), (p, p), (p, p), (0, 0)), mode="reflect")

    def compute_output_shape(self, input_shape):
        grow = lambda d: None if d is None else d + 2 * self.padding  # noqa: E731
        return (input_shape[0], grow(input_shape[1]), grow(input_shape[2]), input_shape[3])

    def get_config(self):
        return {**super().get_config(), "padding": self.padding}


def affine_norm(affine: bool, name: str):
    """Instance norm; affine=False (the authors' default) leaves out the learnable scale and
    shift."""
    return instance_norm(name, scale=affine, center=affine)


def default_blocks(image_shape) -> int:
    return BLOCKS_AT_256 if int(image_shape[0]) >= 256 else BLOCKS_BELOW_256


def build_generator(*, image_shape, num_classes: int = 0, width: int = 64,
                    blocks: int | None = None, affine: bool = False,
                    upsampling: str = "transposed") -> keras.Model:
    """(B, H, W, C) images of one domain -> (B, H, W, C) images of the other, in [-1, 1].

    blocks: residual blocks (default 9 at 256 and above, 6 below). upsampling="resize": each
    doubling is a nearest 2x resize and a 3x3 conv instead of a transposed conv (no checkerboard,
    Odena et al. 2016). num_classes is part of the common builder signature and not used.
    """
    height, width_px, channels = (int(d) for d in image_shape)
    if height % 4 or width_px % 4:
        raise UserError(f"the cyclegan generator halves and doubles height and width twice, so "
                        f"they must divide by 4; {height}x{width_px} do not (set "
                        f"dataset.resolution to a multiple of 4, e.g. 32, 128 or 256).")
    blocks = default_blocks(image_shape) if blocks is None else blocks
    images = keras.Input(shape=(None, None, channels), name="images")
    x = conv_norm_relu(images, width, 7, 1, affine, "c7s1")
    x = conv_norm_relu(x, 2 * width, 3, 2, affine, "down1")
    x = conv_norm_relu(x, 4 * width, 3, 2, affine, "down2")
    for index in range(blocks):
        x = residual_block(x, 4 * width, affine, f"res{index + 1}")
    for level, channels_out in enumerate((2 * width, width), start=1):
        name = f"up{level}"
        if upsampling == "resize":
            x = layers.UpSampling2D(2, interpolation="nearest", name=f"{name}_resize")(x)
            x = ReflectionPadding2D(1, name=f"{name}_pad")(x)
            x = layers.Conv2D(channels_out, 3, name=name)(x)
        else:
            x = layers.Conv2DTranspose(channels_out, 3, strides=2, padding="same", name=name)(x)
        x = affine_norm(affine, f"{name}_norm")(x)
        x = layers.ReLU(name=f"{name}_relu")(x)
    x = ReflectionPadding2D(3, name="to_image_pad")(x)
    x = layers.Conv2D(channels, 7, name="to_image")(x)
    translated = layers.Activation("tanh", name="output", dtype="float32")(x)
    return keras.Model(images, translated, name="generator")


def conv_norm_relu(x, channels: int, kernel: int, strides: int, affine: bool, name: str):
    """Conv (reflection-padded at stride 1, zero-padded 'same' at stride 2 as the authors do),
    instance norm, ReLU."""
    if strides == 1:
        x = ReflectionPadding2D(kernel // 2, name=f"{name}_pad")(x)
        x = layers.Conv2D(channels, kernel, name=name)(x)
    else:
        x = layers.Conv2D(channels, kernel, strides=strides, padding="same", name=name)(x)
    x = affine_norm(affine, f"{name}_norm")(x)
    return layers.ReLU(name=f"{name}_relu")(x)


def residual_block(x, channels: int, affine: bool, name: str):
    """x + (pad, conv3x3, norm, ReLU, pad, conv3x3, norm)(x): no ReLU after the sum."""
    y = conv_norm_relu(x, channels, 3, 1, affine, f"{name}_a")
    y = ReflectionPadding2D(1, name=f"{name}_b_pad")(y)
    y = layers.Conv2D(channels, 3, name=f"{name}_b")(y)
    y = affine_norm(affine, f"{name}_b_norm")(y)
    return layers.Add(name=f"{name}_add")([x, y])
