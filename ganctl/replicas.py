"""Per-replica arithmetic under a tf.distribute strategy: which rows of a global batch or of a
per-example random draw are this replica's, and how a loss is scaled for N replicas.

A lower layer than training/: models (Dropout) and losses (WGAN-GP's eps) draw through
`replica_rows`, and must not import the training package to do so. Choosing and checking a
strategy stays in training/distribute.py. No TensorFlow at import.
"""
from __future__ import annotations


def replicas(strategy) -> int:
    """How many replicas the strategy runs in sync (1 for the default strategy)."""
    return int(strategy.num_replicas_in_sync)


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
