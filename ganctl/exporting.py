"""A run's generator in a form other programs call without ganctl: SavedModel, TFLite, .keras.

The SavedModel and the TFLite file carry one serving signature, `serve(noise)` or
`serve(noise, labels)` for a class-conditional generator, that returns {"images": uint8} in the
dataset's layout (N, H, W, C), pixels mapped from [-1, 1] exactly as `ganctl sample` maps them
(round half to even, then clip); for the 2-D point datasets {"points": float32 (N, 2)}.
The .keras file is the generator itself (float outputs in [-1, 1]), for Keras code that wants
to fine-tune or compose it.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import keras
import tensorflow as tf

from ganctl.core.generators import latent_dim
from ganctl.models.common import is_conditional

SIGNATURE = "serving_default"


def default_name(fmt: str, step: int, ema: bool) -> str:
    stem = f"generator_step{step:06d}" + ("" if ema else "_raw")
    return {"savedmodel": stem + "_savedmodel", "tflite": stem + ".tflite", "keras": stem + ".keras"}[fmt]


def serving_function(generator, points: bool):
    """The tf.function a SavedModel/TFLite file serves, with its input signature."""
    z_dim = latent_dim(generator)
    noise_spec = tf.TensorSpec([None, z_dim], tf.float32, name="noise")

    def outputs(fake):
        fake = tf.cast(fake, tf.float32)   # a mixed-precision G may compute in bfloat16
        if points:
            return {"points": fake}
        # ganctl's to_uint8: np.rint((x + 1) * 127.5), clipped; tf.round also rounds half to even.
        pixels = tf.clip_by_value(tf.round((fake + 1.0) * 127.5), 0.0, 255.0)
        return {"images": tf.cast(pixels, tf.uint8)}

    if is_conditional(generator):
        @tf.function(input_signature=[noise_spec, tf.TensorSpec([None], tf.int32, name="labels")])
        def serve(noise, labels):
            return outputs(generator([noise, labels], training=False))
    else:
        @tf.function(input_signature=[noise_spec])
        def serve(noise):
            return outputs(generator(noise, training=False))
    return serve


def write_savedmodel(generator, points: bool, out: Path) -> None:
    """Keras 3's export path: an ExportArchive tracking G's variables, one endpoint."""
    archive = keras.export.ExportArchive()
    archive.track(generator)
    archive.add_endpoint("serve", serving_function(generator, points))
    archive.write_out(str(out), verbose=False)


def export_generator(generator, dataset, fmt: str, out: Path) -> dict:
    """Write `out` in format `fmt`; return what the run's export log records about it."""
    points = dataset.kind == "points"
    out.parent.mkdir(parents=True, exist_ok=True)
    # Everything is written next to `out` under a temporary name and moved into place last, so
    # a failed or interrupted export leaves nothing that looks finished.
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        if fmt == "keras":
            staged = staging / out.name
            generator.save(staged)
        else:
            saved = staging / "savedmodel"
            write_savedmodel(generator, points, saved)
            staged = saved
            if fmt == "tflite":
                converter = tf.lite.TFLiteConverter.from_saved_model(str(saved), [SIGNATURE])
                staged = staging / out.name
                staged.write_bytes(converter.convert())
        os.replace(staged, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    conditional = is_conditional(generator)
    inputs = f"noise float32 (N, {latent_dim(generator)})" + (", labels int32 (N,)" if conditional
                                                                else "")
    output = ("points float32 (N, 2)" if points else
              f"images uint8 (N, {', '.join(map(str, dataset.image_shape))})")
    signature = (f"keras model: {inputs} -> float32 in [-1, 1]" if fmt == "keras"
                 else f"serve({inputs}) -> {output}")
    return {"path": str(out), "format": fmt, "signature": signature,
            "conditional": conditional, "written": time.strftime("%Y-%m-%d %H:%M:%S")}


def append_log(log_file: Path, record: dict) -> None:
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "a") as file:
        file.write(json.dumps(record) + "\n")
