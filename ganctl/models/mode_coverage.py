"""Mode-coverage switches for every discriminator: PacGAN packing and a minibatch-stddev layer.

Both let D see more than one sample at a time, so a generator that collapses onto a few outputs
is told so (one sample alone looks real; many identical ones do not).

- `model.discriminator.pack=N` (PacGAN, Lin et al. 2018): D judges N samples at once,
  concatenated along the last axis (channels of an image, coordinates of a point), and gives one
  verdict per pack. Rows i*N .. i*N+N-1 of a batch form pack i, so a batch of B real (or B fake)
  samples is B/N packs, each all real or all fake; B must be a multiple of N (per replica under
  train.strategy, so packs never straddle replicas). The D built for the packed shape is any of
  ganctl's builders, wrapped by `packed_discriminator`. A class-conditional D (model=cdcgan)
  receives the N labels of each pack and projects onto the sum of their embeddings (the
  projection term of Miyato & Koyama for a multi-set of classes); G draws fakes with the real
  batch's labels, so a real pack and a fake pack carry the same classes.
- `model.discriminator.minibatch_std=true` (Karras et al. 2018, ProGAN section 3): before D's
  last block, one feature is appended: the standard deviation of each feature over a group of
  up to GROUP_SIZE consecutive samples, averaged. A collapsed group has 0 there.

Penalties (WGAN-GP, R1) take the gradient norm per verdict, i.e. over a whole pack; they are
computed per D output row (ganctl/losses/). With the minibatch-stddev layer a sample's verdict
depends on its group, which the per-example penalties tolerate as StyleGAN does (R1 with it).
"""
from __future__ import annotations

import math

import keras
from keras import layers, ops

from ganctl.errors import UserError

GROUP_SIZE = 4  # samples per minibatch-stddev group (StyleGAN's mbstd_group_size)


def packed_shape(image_shape, pack: int) -> tuple[int, ...]:
    """The shape one packed sample has: the last axis N times as long."""
    shape = tuple(int(d) for d in image_shape)
    return (*shape[:-1], shape[-1] * pack)


def check_pack(pack, batch_size: int, replicas: int = 1, where: str = "train.batch_size") -> None:
    if isinstance(pack, bool) or not isinstance(pack, int) or pack < 1:
        raise UserError(f"model.discriminator.pack={pack} is invalid: it is the number of samples "
                        "D judges together (PacGAN) and must be a whole number >= 1; 1 is off, "
                        "2 to 4 are the paper's values.")
    rows = batch_size // max(replicas, 1)
    if pack > 1 and (batch_size % max(replicas, 1) or rows % pack):
        per = f" ({rows} per replica on {replicas} replicas)" if replicas > 1 else ""
        raise UserError(f"model.discriminator.pack={pack} groups each batch into packs of {pack} "
                        f"samples, but {where}={batch_size}{per} is not a multiple of {pack}. "
                        f"Use a batch size divisible by {pack * max(replicas, 1)}, e.g. "
                        f"{where}={math.ceil(batch_size / (pack * replicas)) * pack * replicas}, "
                        "or model.discriminator.pack=1.")


@keras.saving.register_keras_serializable(package="ganctl")
class Pack(layers.Layer):
    """(B, ..., C) -> (B/N, ..., N*C): N consecutive samples side by side on the last axis."""

    def __init__(self, pack: int, **kwargs):
        super().__init__(**kwargs)
        self.pack = pack

    def call(self, x):
        inner = tuple(x.shape[1:])
        x = ops.reshape(x, (-1, self.pack, *inner))
        x = ops.moveaxis(x, 1, -2)  # (B/N, ..., N, C)
        return ops.reshape(x, (-1, *inner[:-1], inner[-1] * self.pack))

    def compute_output_shape(self, shape):
        batch = None if shape[0] is None else shape[0] // self.pack
        return (batch, *shape[1:-1], shape[-1] * self.pack)

    def get_config(self):
        return {**super().get_config(), "pack": self.pack}


@keras.saving.register_keras_serializable(package="ganctl")
class PackLabels(layers.Layer):
    """(B,) labels -> (B/N, N): each pack's labels."""

    def __init__(self, pack: int, **kwargs):
        super().__init__(**kwargs)
        self.pack = pack

    def call(self, labels):
        return ops.reshape(ops.cast(labels, "int32"), (-1, self.pack))

    def compute_output_shape(self, shape):
        return (None if shape[0] is None else shape[0] // self.pack, self.pack)

    def get_config(self):
        return {**super().get_config(), "pack": self.pack}


def packed_discriminator(inner: keras.Model, image_shape, pack: int) -> keras.Model:
    """A D for (B, *image_shape) batches that judges packs of `pack` with `inner`, built for
    packed_shape(image_shape, pack) (and, if conditional, labels of shape (pack,))."""
    images = keras.Input(shape=tuple(int(d) for d in image_shape), name="images")
    packed = Pack(pack, name="pack")(images)
    if len(inner.inputs) == 2:
        labels = keras.Input(shape=(), dtype="int32", name="labels")
        logits = inner([packed, PackLabels(pack, name="pack_labels")(labels)])
        return keras.Model([images, labels], logits, name="discriminator")
    return keras.Model(images, inner(packed), name="discriminator")


@keras.saving.register_keras_serializable(package="ganctl")
class MinibatchStd(layers.Layer):
    """(B, ..., C) -> (B, ..., C+1): the last channel is the mean over features of the standard
    deviation over a group of consecutive samples (Karras et al. 2018), the same for the group.

    The group is the largest size <= GROUP_SIZE dividing the batch (known when the step is
    traced), so real and fake halves of one D call are never mixed when each is a multiple of it.
    """

    def __init__(self, group_size: int = GROUP_SIZE, **kwargs):
        super().__init__(**kwargs)
        self.group_size = group_size

    def call(self, x):
        batch = x.shape[0]
        group = batch if batch is not None and batch < self.group_size else self.group_size
        if batch is not None:
            while batch % group:
                group -= 1
        else:
            group = ops.shape(x)[0]  # unknown batch at trace time: one group
        inner = tuple(x.shape[1:])
        grouped = ops.reshape(ops.cast(x, "float32"), (-1, group, *inner))
        std = ops.sqrt(ops.var(grouped, axis=1) + 1e-8)  # (B/G, ...)
        stat = ops.mean(std, axis=tuple(range(1, len(inner) + 1)), keepdims=True)  # (B/G, 1..)
        stat = ops.repeat(stat, group, axis=0)  # back to (B, 1, ..., 1)
        stat = ops.broadcast_to(stat, (ops.shape(x)[0], *inner[:-1], 1))
        return ops.concatenate([x, ops.cast(stat, x.dtype)], axis=-1)

    def compute_output_shape(self, shape):
        return (*shape[:-1], shape[-1] + 1)

    def get_config(self):
        return {**super().get_config(), "group_size": self.group_size}


def couples_examples(model: keras.Model) -> bool:
    """Whether a sample's output depends on the other samples of its batch (batch norm or the
    minibatch-stddev layer, in the model or a model inside it): then real and fake batches must
    go through D in separate calls."""
    for layer in model._flatten_layers(include_self=False):
        if isinstance(layer, (layers.BatchNormalization, MinibatchStd)):
            return True
    return False
