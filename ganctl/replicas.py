"""Replicas of one run (train.strategy): which process is the chief, and the helpers that make
N replicas compute what one device computes for the same global batch (ganctl/training/
distribute.py explains the rules). Models and losses use these; TensorFlow is imported inside
the functions, so the CLI can ask about the chief without it."""
from __future__ import annotations

import json
import os

from ganctl.errors import UserError


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


def replicas(strategy) -> int:
    return int(strategy.num_replicas_in_sync)


def synchronize_batch_norm(*models) -> None:
    """Batch norm over the global batch rather than each replica's share; without it the
    replicas' moving statistics drift apart unnoticed. Read at call time, so setting it on
    built layers works."""
    import keras

    for model in models:
        for layer in model._flatten_layers():
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.synchronized = True


def replica_rows(draw, local_shape):
    """draw(shape) for this replica's rows of a per-example random tensor.

    Replicas share the seed state, so each draws the global shape and keeps its own rows:
    together they use exactly the numbers one device would (and the seed advances as there).
    Outside a strategy this is draw(local_shape).
    """
    import tensorflow as tf

    context = tf.distribute.get_replica_context()
    n = context.num_replicas_in_sync if context is not None else 1
    if n == 1:
        return draw(tuple(local_shape))
    rows = local_shape[0]
    every_row = draw((rows * n, *local_shape[1:]))
    first = context.replica_id_in_sync_group * rows
    return every_row[first:first + rows]


def replica_slice(global_batch, chunks: int = 1):
    """This replica's rows of a global batch of `chunks` consecutive chunks (the D steps of one
    G step): chunk k of replica r is rows [kB + rb, kB + (r+1)b), b = B / N, as on one device."""
    import tensorflow as tf
    from keras import ops

    context = tf.distribute.get_replica_context()
    n = context.num_replicas_in_sync if context is not None else 1
    if n == 1:
        return global_batch
    shape = tuple(global_batch.shape[1:])
    per_replica = ops.reshape(global_batch, (chunks, n, -1, *shape))
    return ops.reshape(per_replica[:, context.replica_id_in_sync_group], (-1, *shape))


def per_replica_loss(value, strategy):
    """The optimizer all-reduces gradients with SUM, so each replica's mean loss is divided by N
    to make the summed gradient the global batch's mean gradient."""
    n = replicas(strategy)
    return value / n if n > 1 else value
