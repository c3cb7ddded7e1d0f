"""Dataset, networks and loss from their config nodes: shared by train, sample and eval."""
from __future__ import annotations

import keras
from omegaconf import DictConfig, OmegaConf

from ganctl.config import LossConfig, NetworkConfig, dataset_schema, shipped_option
from ganctl.models.mode_coverage import check_pack, packed_discriminator, packed_shape
from ganctl.registry import build, check

GENERATOR_CONTEXT = ("z_dim", "image_shape", "num_classes", "bounded")
DISCRIMINATOR_CONTEXT = ("image_shape", "num_classes")


def check_components(cfg) -> None:
    """Targets exist and every field is used, before any run folder is made."""
    check(cfg.dataset, "dataset", dataset_schema(cfg.dataset))
    check(cfg.model.generator, "model.generator", NetworkConfig, GENERATOR_CONTEXT)
    node, pack = _without_pack(cfg.model.discriminator)
    check_pack(pack, cfg.train.batch_size)
    check(node, "model.discriminator", NetworkConfig,
          DISCRIMINATOR_CONTEXT + (("labels_per_example",) if pack > 1 else ()))
    check(cfg.loss, "loss", LossConfig)


def build_dataset(dataset_cfg):
    return build(dataset_cfg, "dataset", dataset_schema(dataset_cfg))


def dataset_by_name(name: str):
    """(dataset, name) for a shipped dataset choice such as real=mnist; (None, None) when `name`
    is not one (a path, say)."""
    node = None if "." in name else shipped_option("dataset", name)
    return (None, None) if node is None else (build(node, "real", dataset_schema(node)), name)


def translation_networks(model_cfg) -> tuple[str, ...]:
    """The networks a translation model trains, by name, without building them."""
    return {"pix2pix": ("generator", "discriminator"),
            "cyclegan": ("generator", "generator_ba", "discriminator", "discriminator_a"),
            }[model_cfg.translation.kind]


def network_role(name: str) -> str:
    """"generator" or "discriminator": which of the two a network named `name` is."""
    return "discriminator" if name.startswith("discriminator") else "generator"


def build_translation_networks(model_cfg, dataset) -> dict[str, keras.Model]:
    """An image-to-image model's networks by name, for its `model.translation.kind`:
    pix2pix: "generator" (A -> B) and "discriminator" (judges A and B together); cyclegan adds
    "generator_ba" (B -> A) and "discriminator_a" (judges A; "discriminator" judges B), each
    built from the same node as its counterpart."""
    shape = {"image_shape": tuple(dataset.image_shape)}
    networks = {}
    for name in translation_networks(model_cfg):
        role = network_role(name)
        networks[name] = build(model_cfg[role], f"model.{role}", NetworkConfig, **shape)
        networks[name].name = name
    return networks


def build_generator(model_cfg, dataset) -> keras.Model:
    return build(model_cfg.generator, "model.generator", NetworkConfig, z_dim=model_cfg.z_dim,
                 image_shape=tuple(dataset.image_shape), num_classes=dataset.num_classes,
                 bounded=dataset.bounded)


def build_discriminator(model_cfg, dataset) -> keras.Model:
    """The configured D; with model.discriminator.pack=N, the D built for packs of N samples
    inside the wrapper that packs a batch (ganctl/models/mode_coverage.py)."""
    node, pack = _without_pack(model_cfg.discriminator)
    if pack == 1:
        return build(node, "model.discriminator", NetworkConfig,
                     image_shape=tuple(dataset.image_shape), num_classes=dataset.num_classes)
    inner = build(node, "model.discriminator", NetworkConfig,
                  image_shape=packed_shape(dataset.image_shape, pack),
                  num_classes=dataset.num_classes, labels_per_example=pack)
    return packed_discriminator(inner, dataset.image_shape, pack)


def _without_pack(node) -> tuple[dict, int]:
    """The D node without `pack`, which every builder gets through the wrapper, and its value."""
    values = OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else dict(node)
    return values, values.pop("pack", 1)


def build_loss(loss_cfg):
    return build(loss_cfg, "loss", LossConfig)


def build_objective(cfg):
    """What the training step minimises: the loss group's loss, except for CycleGAN, whose
    paper objective takes its weights from model.translation (losses/cyclegan.py)."""
    translation = cfg.model.get("translation")
    if translation is None or translation.kind != "cyclegan":
        return build_loss(cfg.loss)
    from ganctl.losses.cyclegan import CycleGAN

    return CycleGAN(cycle_weight=translation.cycle_weight,
                    identity_weight=translation.identity_weight,
                    d_loss_scale=translation.d_loss_scale)


def clone_generator(generator: keras.Model) -> keras.Model:
    """A second generator with the same architecture and weights (the EMA copy)."""
    ema = keras.models.clone_model(generator)
    ema.set_weights(generator.get_weights())
    return ema
