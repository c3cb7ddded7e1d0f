"""Generators as the commands and the in-training evaluation use them: restored from a run,
sampled in batches, and the classes a conditional generator is asked for."""
from __future__ import annotations

import logging
import math
from pathlib import Path

import keras
import numpy as np

from ganctl import rundir
from ganctl.config import choice_name
from ganctl.errors import UserError
from ganctl.models.common import is_conditional

log = logging.getLogger("ganctl")


def load_generator(run_dir: Path, checkpoint: int | str | None = None, ema: bool = True,
                   network: str = "generator"):
    """(generator, dataset, step) restored from a run's checkpoint (a step, "best", or None for
    the newest); only that generator is read. `network`: which one, for a translation model
    with two (CycleGAN's "generator_ba")."""
    from ganctl.core.checkpoints import Checkpoints
    from ganctl.core.components import (build_dataset, build_generator,
                                        build_translation_networks, clone_generator)

    cfg = rundir.load_run_config(run_dir)
    dataset = build_dataset(cfg.dataset)
    if cfg.model.get("translation") is not None:
        generator = build_translation_networks(cfg.model, dataset)[network]
    else:
        generator = build_generator(cfg.model, dataset)
    trackables = {network: generator}
    has_ema = cfg.train.get("ema", 0) > 0
    if ema and has_ema:
        generator = trackables[f"ema_{network}"] = clone_generator(generator)
    elif ema:
        log.info("this run kept no EMA generator (train.ema=0); using the raw generator")
    checkpoint = rundir.parse_checkpoint(checkpoint)
    directory = run_dir / rundir.CHECKPOINT_DIR
    if checkpoint == rundir.BEST_DIR:
        directory, checkpoint = directory / rundir.BEST_DIR, None
        if not directory.is_dir():
            raise UserError(f"run={run_dir} has no best checkpoint ({directory} does not exist): "
                            "it is kept only when training evaluates, with train.eval_every=N. "
                            "Leave checkpoint= out for the newest.")
    checkpoints = Checkpoints(directory, **trackables)
    step = checkpoints.restore(checkpoint, partial=True)
    if step is None:
        raise UserError(f"run={run_dir} has no checkpoint yet in {checkpoints.directory}; train it "
                        "first (checkpoints are written every train.checkpoint_every steps).")
    return generator, dataset, step


def generate(generator, z, labels=None, batch_size: int = 500):
    """G(z) (or G(z, labels) for a conditional G) in inference mode as float32 numpy, in batches
    so memory stays bounded."""
    if is_conditional(generator) and labels is None:
        raise UserError("this generator is class-conditional: it needs a label per sample "
                        "(e.g. ganctl sample labels=[3,7] or per_class=8).")
    parts = []
    for i in range(0, len(z), batch_size):
        inputs = z[i:i + batch_size]
        if is_conditional(generator):
            inputs = [inputs, np.asarray(labels[i:i + batch_size], np.int32)]
        images = generator(inputs, training=False)
        parts.append(keras.ops.convert_to_numpy(keras.ops.cast(images, "float32")))
    return np.concatenate(parts, 0)


def latent_dim(generator) -> int:
    """z's size: the generator's only input, or the first of [z, labels]."""
    return int(generator.inputs[0].shape[-1])


def sample_labels(num: int, num_classes: int, labels=None, per_class: int | None = None,
                  grid: bool = False) -> tuple[np.ndarray, int | None]:
    """(the class of each sample, grid columns or None) for a class-conditional generator.

    The classes are `labels` if given, else all of 0..K-1. per_class=N: N of each, in class
    order. Otherwise `num` samples: a grid gets one row per class with ceil(num / classes)
    columns; other formats cycle through the classes (0, 1, ..., K-1, 0, ...), balanced.
    A grid without labels/per_class over more classes than `num` (Stacked MNIST's 1,000) also
    cycles, so it stays a square grid of `num` images.
    """
    classes = np.asarray(list(labels) if labels is not None else range(num_classes), np.int64)
    if per_class:
        return np.repeat(classes, per_class), per_class if grid else None
    if grid and (labels is not None or len(classes) <= num):
        columns = math.ceil(num / len(classes))
        return np.repeat(classes, columns), columns
    return np.resize(classes, num), None


def conditional_models(dataset) -> list[str]:
    """The shipped model choices whose generator takes labels, found by building each one for
    this dataset's shape (half a second; only error messages ask)."""
    from ganctl.config import shipped_option, shipped_options
    from ganctl.core.components import build_generator

    class Labelled:   # the dataset's shape with classes, so conditional builders accept it
        image_shape, kind, bounded = dataset.image_shape, dataset.kind, dataset.bounded
        num_classes = max(int(dataset.num_classes), 10)

    found = []
    for name in shipped_options("model"):
        try:
            if is_conditional(build_generator(shipped_option("model", name), Labelled)):
                found.append(name)
        except Exception:  # noqa: BLE001  a model that cannot take this data is not a choice here
            continue
    return found


def dataset_name(dataset_cfg) -> str:
    """The config choice (mnist, cifar10, ...): YAML stem = module name, ganctl's naming rule."""
    return choice_name(dataset_cfg["_target_"])


def model_name(model_cfg) -> str:
    """The model choice (dcgan, cdcgan, ...) from its generator's target, by the same rule."""
    return choice_name(model_cfg["generator"]["_target_"])
