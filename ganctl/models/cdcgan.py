"""Class-conditional DCGAN: a label embedding joins z in G (Mirza & Osindero 2014); D is a
projection discriminator (Miyato & Koyama 2018). Bodies are DCGAN's (ganctl/models/dcgan.py)."""
from __future__ import annotations

import keras
from keras import layers, ops

from ganctl.errors import UserError
from ganctl.models.common import spectral_normalized
from ganctl.models.dcgan import downsample, upsample


def check_labelled(num_classes: int) -> None:
    if num_classes < 2:
        raise UserError("model=cdcgan is class-conditional and needs labelled data: "
                        "dataset=mnist, fashion_mnist, cifar10, stacked_mnist, or folder with "
                        "dataset.labels=true (one sub-folder per class). This dataset has "
                        f"{num_classes} classes; use model=dcgan for unlabelled images.")


def build_generator(*, z_dim: int, image_shape, num_classes: int = 0, bounded: bool = True,
                    width: int = 64, batch_norm: bool = True,
                    upsampling: str = "transposed", extra_convs: int = 0) -> keras.Model:
    """[z (B, z_dim), labels (B,)] -> (H, W, C) images.

    The embedding is as wide as z, so the label is not a minority of G's input.
    """
    check_labelled(num_classes)
    z = keras.Input(shape=(z_dim,), name="z")
    labels = keras.Input(shape=(), dtype="int32", name="labels")
    label_code = layers.Embedding(num_classes, z_dim, name="label_embedding")(labels)
    code = layers.Concatenate(name="z_and_label")([z, label_code])
    images = upsample(code, image_shape, bounded=bounded, width=width, batch_norm=batch_norm,
                      upsampling=upsampling, extra_convs=extra_convs)
    return keras.Model([z, labels], images, name="generator")


class Projection(layers.Layer):
    """<embed(y), features>: the class-dependent term of the projection discriminator."""

    def __init__(self, num_classes: int, **kwargs):
        super().__init__(**kwargs)
        self.num_classes = num_classes

    def build(self, input_shapes):
        features_shape, _ = input_shapes
        self.embeddings = self.add_weight(shape=(self.num_classes, features_shape[-1]),
                                          initializer="glorot_uniform", name="embeddings")

    def call(self, inputs):
        features, labels = inputs
        class_vectors = ops.take(ops.cast(self.embeddings, features.dtype),
                                 ops.cast(labels, "int32"), axis=0)
        if len(class_vectors.shape) == 3:  # a pack's labels (B, N, F): the sum of their embeddings
            class_vectors = ops.sum(class_vectors, axis=1)
        return ops.sum(class_vectors * features, axis=-1, keepdims=True)

    def compute_output_shape(self, input_shapes):
        return (input_shapes[0][0], 1)

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes}


def build_discriminator(*, image_shape, num_classes: int = 0, width: int = 64,
                        batch_norm: bool = False, dropout: float = 0.0,
                        spectral_norm: bool = False, minibatch_std: bool = False,
                        labels_per_example: int = 1) -> keras.Model:
    """[images, labels] -> logits = w . phi(x) + embed(y) . phi(x).

    labels_per_example > 1 (model.discriminator.pack, mode_coverage.py): each example is a pack
    with that many labels, shape (B, N), and the projection uses the sum of their embeddings.

    Projection instead of concatenating the label to the input: the class enters as an inner
    product with D's features, which Miyato & Koyama show trains more stably and gives better
    class-conditional samples.
    """
    check_labelled(num_classes)
    images = keras.Input(shape=tuple(int(d) for d in image_shape), name="images")
    labels = keras.Input(shape=() if labels_per_example == 1 else (labels_per_example,),
                         dtype="int32", name="labels")
    features = downsample(images, image_shape, width=width, batch_norm=batch_norm,
                          dropout=dropout, spectral_norm=spectral_norm,
                          minibatch_std=minibatch_std)
    unconditional = spectral_normalized(layers.Dense(1, name="logits"), spectral_norm)(features)
    projection = Projection(num_classes, name="projection")([features, labels])
    logits = layers.Add(name="logits_plus_projection")([unconditional, projection])
    return keras.Model([images, labels], logits, name="discriminator")
