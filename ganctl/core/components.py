"""Dataset, networks and loss from their config nodes: shared by train, sample and eval."""
from __future__ import annotations

import keras

from ganctl.config import LossConfig, NetworkConfig, dataset_schema, shipped_option
from ganctl.registry import build, check

GENERATOR_CONTEXT = ("z_dim", "image_shape", "num_classes", "bounded")
DISCRIMINATOR_CONTEXT = ("image_shape", "num_classes")


def check_components(cfg) -> None:
    """Targets exist and every field is used, before any run folder is made."""
    check(cfg.dataset, "dataset", dataset_schema(cfg.dataset))
    check(cfg.model.generator, "model.generator", NetworkConfig, GENERATOR_CONTEXT)
    check(cfg.model.discriminator, "model.discriminator", NetworkConfig, DISCRIMINATOR_CONTEXT)
    check(cfg.loss, "loss", LossConfig)


def build_dataset(dataset_cfg):
    return build(dataset_cfg, "dataset", dataset_schema(dataset_cfg))


def dataset_by_name(name: str):
    """(dataset, name) for a shipped dataset choice such as real=mnist; (None, None) when `name`
    is not one (a path, say)."""
    node = None if "." in name else shipped_option("dataset", name)
    return (None, None) if node is None else (build(node, "real", dataset_schema(node)), name)


def build_generator(model_cfg, dataset) -> keras.Model:
    return build(model_cfg.generator, "model.generator", NetworkConfig, z_dim=model_cfg.z_dim,
                 image_shape=tuple(dataset.image_shape), num_classes=dataset.num_classes,
                 bounded=dataset.bounded)


def build_discriminator(model_cfg, dataset) -> keras.Model:
    return build(model_cfg.discriminator, "model.discriminator", NetworkConfig,
                 image_shape=tuple(dataset.image_shape), num_classes=dataset.num_classes)


def build_loss(loss_cfg):
    return build(loss_cfg, "loss", LossConfig)


def clone_generator(generator: keras.Model) -> keras.Model:
    """A second generator with the same architecture and weights (the EMA copy)."""
    ema = keras.models.clone_model(generator)
    ema.set_weights(generator.get_weights())
    return ema
