"""Image-to-image generators as training snapshots, `sample` and `eval` use them: restored from
a run, applied in batches, and shown as input | output | target rows."""
from __future__ import annotations

from pathlib import Path

import keras
import numpy as np

from ganctl import rundir
from ganctl.core.components import translation_networks
from ganctl.errors import UserError

# sample/eval direction= -> the network that translates that way. A pix2pix run has only A->B.
DIRECTIONS = {"AtoB": "generator", "BtoA": "generator_ba"}


def is_translation_run(cfg) -> bool:
    return cfg.model.get("translation") is not None


def to_float(images: np.ndarray) -> np.ndarray:
    """uint8 [0, 255] -> float32 [-1, 1]; float images pass through."""
    images = np.asarray(images)
    return images.astype(np.float32) / 127.5 - 1.0 if images.dtype == np.uint8 else images


def translate(generator, images: np.ndarray, batch_size: int = 16) -> np.ndarray:
    """G(images) in inference mode, float32 in [-1, 1], in batches so memory stays bounded."""
    images = to_float(images)
    parts = [keras.ops.convert_to_numpy(keras.ops.cast(
        generator(images[i:i + batch_size], training=False), "float32"))
        for i in range(0, len(images), batch_size)]
    return np.concatenate(parts, 0) if parts else np.zeros_like(images)


def comparison_rows(generator, inputs: np.ndarray, targets: np.ndarray | None = None) -> np.ndarray:
    """input | output | target per row (input | output without targets), flattened in row
    order for image_grid(columns=3 or 2); floats in [-1, 1]."""
    inputs = to_float(inputs)
    columns = [inputs, translate(generator, inputs)] + (
        [to_float(targets)] if targets is not None else [])
    return np.stack(columns, 1).reshape(-1, *inputs.shape[1:])


def cycle_rows(generator_ab, generator_ba, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a | G(a) | F(G(a)) rows, then b | F(b) | G(F(b)) rows (G: A -> B, F: B -> A), flattened
    for image_grid(columns=3); floats in [-1, 1]."""
    rows = []
    for inputs, there, back in ((a, generator_ab, generator_ba), (b, generator_ba, generator_ab)):
        inputs = to_float(inputs)
        translated = translate(there, inputs)
        rows.append(np.stack([inputs, translated, translate(back, translated)], 1))
    rows = np.concatenate(rows, 0)
    return rows.reshape(-1, *rows.shape[2:])


def load_translator(run_dir: Path, checkpoint=None, ema: bool = True, direction: str = "AtoB"):
    """(generator, dataset, step): the network that translates `direction`, restored from a
    run's checkpoint; a UserError when the run has none that way (pix2pix: A to B only)."""
    from ganctl.core.generators import load_generator

    cfg = rundir.load_run_config(run_dir)
    name = DIRECTIONS[direction]
    if name not in translation_networks(cfg.model):
        raise UserError(f"direction={direction}: this run (model={cfg.model.translation.kind}) "
                        "translates from A to B only; leave direction= out (AtoB).")
    return load_generator(run_dir, checkpoint, ema, network=name)


def size_multiple(generator) -> int:
    """What a fully convolutional G's input height and width must be multiples of: the product
    of its strides (2 ** halvings for the U-Net)."""
    multiple = 1
    for layer in generator.layers:
        strides = getattr(layer, "strides", None)
        if isinstance(layer, keras.layers.Conv2D) and strides:
            multiple *= int(strides[0])
    return multiple
