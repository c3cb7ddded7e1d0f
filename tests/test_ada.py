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
    # r_t starts above the 0.4 target on 32 images, so p rises by 0.16 a step (clipped at 1).
    assert [r["augment_p"] for r in rows][-1] == p
    steps = [round(r["augment_p"] / 0.16) for r in rows if r["r_t"] > 0.4]
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


def test_ada_default_speed_is_a_share_of_the_run():
    from ganctl.training.augment import ADA_PAPER_KIMG, ADA_RUN_SHARE, ada_kimg
    from omegaconf import OmegaConf

    def kimg(**train):
        return ada_kimg(OmegaConf.create({"ada_kimg": None, **train}), images_per_step=64)

    # 6,000 steps of 64 images: 384 kimg, so p may cross its range in 19.2 kimg.
    assert kimg(steps=6000) == ADA_RUN_SHARE * 384
    assert kimg(steps=10**6) == ADA_PAPER_KIMG  # a long run keeps ADA's own speed
    assert kimg(steps=6000, ada_kimg=20.0) == 20.0  # a set value wins


def test_the_compiled_step_moves_p_at_the_resolved_speed(compose_cfg):
    import keras

    from ganctl.core.components import build_dataset
    from ganctl.core.state import build_training_state
    from ganctl.training.steps import make_train_step

    def one_step_of_p(overrides):
        cfg = compose_cfg(["dataset=mnist", "dataset.limit=32", "train.batch_size=16",
                           "train.augment=ada", *overrides])
        keras.utils.set_random_seed(0)
        dataset = build_dataset(cfg.dataset)
        state = build_training_state(cfg, dataset)
        step = make_train_step(state)
        state.augment_probability.assign(0.5)  # mid-range, so neither direction is clipped
        step(*next(iter(dataset.tf_dataset(16, seed=0))))
        # 16 reals give r_t in steps of 1/8, never the 0.4 target itself: p always moves.
        return abs(float(state.augment_probability.numpy()) - 0.5)

    # batch 16: 250 steps are 4 kimg, 5% of it 0.2 kimg, so p moves 16 / 200 per step.
    assert abs(one_step_of_p(["train.steps=250"]) - 0.08) < 1e-6
    assert abs(one_step_of_p(["train.steps=500"]) - 0.04) < 1e-6
    assert abs(one_step_of_p(["train.steps=250", "train.ada_kimg=0.1"]) - 0.16) < 1e-6
