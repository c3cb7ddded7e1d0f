"""Per-step figures: one JSON line each in metrics.jsonl, and TensorBoard scalars."""
from __future__ import annotations

import json
from pathlib import Path

import tensorflow as tf
from tensorflow.core.framework import summary_pb2

from ganctl import rundir
from ganctl.training.tb_summaries import metrics_table, write_text

# tf.summary.scalar needs the tensorboard package; tf.summary.write with the scalars plugin's
# metadata writes the same event records without it, and TensorBoard reads them as scalars.
_SCALAR_METADATA = summary_pb2.SummaryMetadata(
    plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars"))


class MetricsLog:
    def __init__(self, run_dir: Path, filename: str = rundir.METRICS_FILE):
        self.path = run_dir / filename
        self.file = open(self.path, "a", buffering=1)  # appended to on resume
        self.writer = tf.summary.create_file_writer(str(run_dir / rundir.TENSORBOARD_DIR))

    def write(self, step: int, values: dict) -> None:
        row = {"step": int(step), **{k: _plain(v) for k, v in values.items()}}
        self.file.write(json.dumps(row) + "\n")
        with self.writer.as_default(step=int(step)):
            for key, value in row.items():
                if key != "step" and isinstance(value, (int, float)):
                    tf.summary.write(key, tf.constant(value, tf.float32), metadata=_SCALAR_METADATA)
        evaluated = {k: v for k, v in row.items() if k.startswith("eval/")}
        if evaluated:  # the evaluation also as one table in TensorBoard's text dashboard
            write_text(self.writer, "eval", metrics_table(evaluated), step)

    def close(self) -> None:
        self.file.close()
        self.writer.close()


def _plain(value):
    if isinstance(value, (int, str)):
        return value
    value = float(value)
    return value if value == value and abs(value) != float("inf") else str(value)
