"""train.strategy: one device, the devices of one machine (MirroredStrategy), or several
machines (MultiWorkerMirroredStrategy, configured by TF_CONFIG).

A run on N replicas computes what one device computes for the same global batch: every replica
gets its rows of the global batch, every per-example random draw (z, WGAN-GP's eps, DiffAugment,
dropout masks) is the one-device draw of the global batch sliced to the replica's rows, batch
norm is synchronised, and losses are divided by N because the optimizer sums the replicas'
gradients. tests/test_distribute.py checks the loss curves against one device.
"""
from __future__ import annotations

import json
import logging
import os

from ganctl.errors import UserError
# The per-replica arithmetic lives one layer down, where models and losses may import it; it is
# re-exported here so the training code keeps one place to import strategy helpers from.
from ganctl.replicas import per_replica_loss, replica_rows, replica_slice, replicas  # noqa: F401

log = logging.getLogger("ganctl")
STRATEGIES = ("auto", "single", "mirrored", "multi_worker")


def tf_config_workers() -> tuple[int, int]:
    """(number of workers, this worker's index) from TF_CONFIG; (1, 0) without one. Read with
    no TensorFlow, so the CLI knows before training whether this process is the chief."""
    raw = os.environ.get("TF_CONFIG", "").strip()
    if not raw:
        return 1, 0
    try:
        config = json.loads(raw)
        cluster, task = config.get("cluster", {}), config.get("task", {})
        workers = len(cluster.get("chief", [])) + len(cluster.get("worker", []))
        index = int(task.get("index", 0)) + (len(cluster.get("chief", []))
                                               if task.get("type") == "worker" else 0)
    except (ValueError, TypeError, AttributeError) as err:
        raise UserError(f"TF_CONFIG is not valid JSON of the form {{\"cluster\": {{\"worker\": "
                        f"[\"host1:port\", \"host2:port\"]}}, \"task\": {{\"type\": \"worker\", "
                        f"\"index\": 0}}}} ({err}).") from err
    return max(workers, 1), index


def is_chief_process() -> bool:
    """The chief (the "chief" task, else worker 0) writes the run's files; the others only compute."""
    return tf_config_workers()[1] == 0


def make_strategy(kind: str):
    """The tf.distribute strategy for train.strategy; `auto` picks multi_worker when TF_CONFIG
    names several workers, mirrored with more than one GPU, else single.

    Call it before any TensorFlow op runs: MultiWorkerMirroredStrategy configures the runtime's
    collective ops, which TF only allows at start-up."""
    import tensorflow as tf

    if kind not in STRATEGIES:
        raise UserError(f"train.strategy={kind} is not one of: {', '.join(STRATEGIES)}.")
    workers, _ = tf_config_workers()
    if kind == "auto":
        # list_physical_devices leaves the runtime uninitialised, which multi_worker needs.
        gpus = len(tf.config.list_physical_devices("GPU"))
        kind = "multi_worker" if workers > 1 else "mirrored" if gpus > 1 else "single"
    if kind == "single":
        return tf.distribute.get_strategy()  # the default strategy: run/reduce add nothing
    if kind == "mirrored":
        # Without GPUs, the CPU's logical devices (one unless configured), so the same code runs.
        devices = [d.name for d in (tf.config.list_logical_devices("GPU")
                                    or tf.config.list_logical_devices("CPU"))]
        return tf.distribute.MirroredStrategy(devices)
    if workers < 2:
        raise UserError("train.strategy=multi_worker needs TF_CONFIG to name the cluster: set it "
                        "on every machine, e.g. TF_CONFIG='{\"cluster\": {\"worker\": [\"host1:"
                        "12345\", \"host2:12345\"]}, \"task\": {\"type\": \"worker\", \"index\": 0}}' "
                        "(index 1 on the second), or use train.strategy=mirrored on one machine.")
    return tf.distribute.MultiWorkerMirroredStrategy()


def check_strategy(strategy, *, batch_size: int, jit_compile: bool) -> None:
    n = replicas(strategy)
    if n > 1 and batch_size % n:
        raise UserError(f"train.batch_size={batch_size} is the global batch, split evenly over "
                        f"{n} replicas; make it a multiple of {n}.")
    if n > 1 and jit_compile:
        # Measured: XLA under MirroredStrategy fails with "Trying to access resource ... on
        # device CPU:1 from device CPU:0" (TF 2.21).
        raise UserError(f"train.jit_compile=true does not work with {n} replicas in this "
                        "TensorFlow; set train.jit_compile=false or train.strategy=single.")


def synchronize_batch_norm(*models) -> None:
    """Batch norm over the global batch rather than each replica's share; without it the
    replicas' moving statistics drift apart unnoticed. Read at call time, so setting it on
    built layers works."""
    import keras

    for model in models:
        for layer in model._flatten_layers():
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.synchronized = True
