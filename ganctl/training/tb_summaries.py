"""TensorBoard image and text summaries written with TensorFlow alone.

tf.summary.image and tf.summary.text live in the tensorboard package (without it they raise
TBNotInstalledError), so training would need it installed. tf.summary.write with the plugin's
metadata writes the same event records, which TensorBoard's images and text dashboards read:
an image is the string tensor [width, height, PNG bytes], a text a string scalar in Markdown
(the layout of tensorboard/plugins/image/summary_v2.py and text/summary_v2.py).
"""
from __future__ import annotations

from pathlib import Path

import tensorflow as tf
from PIL import Image
from tensorflow.core.framework import summary_pb2


def _metadata(plugin: str, description: str = "") -> summary_pb2.SummaryMetadata:
    # Empty plugin content reads as the plugin's version-0 data: what both plugins write.
    return summary_pb2.SummaryMetadata(
        summary_description=description,
        plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name=plugin))


def write_image(writer, tag: str, png: Path, step: int, description: str = "") -> None:
    """The PNG file `png` (written already, e.g. a snapshot grid) as image `tag` at `step`."""
    data = Path(png).read_bytes()
    with Image.open(png) as picture:
        width, height = picture.size
    tensor = tf.constant([str(width).encode(), str(height).encode(), data], dtype=tf.string)
    with writer.as_default(step=int(step)):
        tf.summary.write(tag, tensor, metadata=_metadata("images", description))
    writer.flush()  # so TensorBoard shows the grid while training goes on


def write_text(writer, tag: str, markdown: str, step: int) -> None:
    with writer.as_default(step=int(step)):
        tf.summary.write(tag, tf.constant(markdown, dtype=tf.string), metadata=_metadata("text"))


def metrics_table(values: dict) -> str:
    """A Markdown table of the metrics in `values`, as the text dashboard renders it."""
    lines = ["| metric | value |", "|---|---|"]
    lines += [f"| {k} | {v:.6g} |" if isinstance(v, float) else f"| {k} | {v} |"
              for k, v in values.items()]
    return "\n".join(lines)
