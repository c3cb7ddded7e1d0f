"""train.augment=ada: DiffAugment's transforms applied with a probability p that follows r_t,
p checkpointed and resumed exactly."""
from __future__ import annotations

import json

import numpy as np

from tests.test_reliability import tensors

# p moves by batch / (ada_kimg * 1000) = 0.16 per step, so a few steps show it moving.
ADA = ["dataset=mnist", "dataset.limit=32", "train.batch_size=16", "train.augment=ada",
       "train.ada_kimg=0.1", "train.checkpoint_every=3", "train.deterministic=true"]


def test_ada_probability_follows_r_t_and_resumes_bit_identically(compose_cfg, tmp_path):
    from ganctl.training.loop import train

    straight, split = tmp_path / "straight", tmp_path / "split"
    for run in (straight, split):
        run.mkdir()
    train(compose_cfg([*ADA, "train.steps=6"]), straight)
    train(compose_cfg([*ADA, "train.steps=3"]), split)
    train(compose_cfg([*ADA, "train.steps=6"]), split, resuming=True)

    a, b = tensors(straight / "checkpoints/ckpt-6"), tensors(split / "checkpoints/ckpt-6")
    assert a.keys() == b.keys()
    # Every variable; the object graph's bookkeeping differs between train() calls in one process.
    assert [k for k in a if not np.array_equal(a[k], b[k])] == ["_CHECKPOINTABLE_OBJECT_GRAPH"]
    p = a["augment_p/.ATTRIBUTES/VARIABLE_VALUE"]
    rows = [json.loads(line) for line in (straight / "metrics.jsonl").read_text().splitlines()]
    # r_t starts above the 0.6 target on 32 images, so p rises by 0.16 a step (clipped at 1).
    assert [r["augment_p"] for r in rows][-1] == p
    steps = [round(r["augment_p"] / 0.16) for r in rows if r["r_t"] > 0.6]
    assert p > 0 and steps[:2] == [1, 2]


def test_a_run_without_ada_keeps_its_checkpoint_layout(compose_cfg, tmp_path):
    from ganctl.core.components import build_dataset
    from ganctl.core.state import build_training_state

    cfg = compose_cfg(["dataset=mnist", "dataset.limit=32"])
    state = build_training_state(cfg, build_dataset(cfg.dataset))
    assert "augment_p" not in state.trackables()


def test_each_transform_changes_an_image_with_probability_p():
    import keras
    import tensorflow as tf

    from ganctl.training.augment import make_augment

    images = tf.random.stateless_uniform((256, 8, 8, 1), (1, 2), -1, 1)
    probability = tf.Variable(0.0)
    augment = make_augment(["translation"], keras.random.SeedGenerator(0), probability)
    assert np.array_equal(augment(images), images)
    probability.assign(0.5)
    changed = np.any(np.asarray(augment(images)) != np.asarray(images), axis=(1, 2, 3)).mean()
    # Translation by 0 also leaves an image as it is (1 of 9 shifts per axis, 1/81 both).
    assert 0.35 < changed < 0.6
