"""train.augment=ada: DiffAugment's transforms applied with a probability p that follows r_t,
p checkpointed and resumed exactly."""
from __future__ import annotations

import json

import numpy as np

from tests.test_reliability import tensors

# p moves by batch / (ada_kimg * 1000) = 0.16 per step, so a few steps show it moving.
# A target of 0.4, which a mean r_t of 4 x 16 reals (steps of 1/32) never equals: p always moves.
ADA = ["dataset=mnist", "dataset.limit=32", "train.batch_size=16", "train.augment=ada",
       "train.ada_kimg=0.1", "train.ada_target=0.4", "train.checkpoint_every=3",
       "train.deterministic=true"]


def test_ada_moves_p_every_4_steps_by_their_mean_r_t_and_resumes_bit_identically(
        compose_cfg, tmp_path):
    from ganctl.training.augment import ADA_INTERVAL
    from ganctl.training.loop import train

    straight, split = tmp_path / "straight", tmp_path / "split"
    for run in (straight, split):
        run.mkdir()
    train(compose_cfg([*ADA, "train.steps=9"]), straight)
    # Stopped at step 6, in the middle of an interval: the r_t sum so far is in the checkpoint.
    train(compose_cfg([*ADA, "train.steps=6"]), split)
    train(compose_cfg([*ADA, "train.steps=9"]), split, resuming=True)

    a, b = tensors(straight / "checkpoints/ckpt-9"), tensors(split / "checkpoints/ckpt-9")
    assert a.keys() == b.keys()
    # Every variable; the object graph's bookkeeping differs between train() calls in one process.
    assert [k for k in a if not np.array_equal(a[k], b[k])] == ["_CHECKPOINTABLE_OBJECT_GRAPH"]
    rows = [json.loads(line) for line in (straight / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(1, 10))
    # p holds for 4 steps, then moves by 4 x 16 / 100 = 0.64 toward the 0.4 target, by the
    # sign of the mean r_t of those 4 steps' real batches (clipped to [0, 1]).
    expected, p = [], np.float32(0.0)
    for r in rows:
        if r["step"] % ADA_INTERVAL == 0:
            mean = np.mean([q["r_t"] for q in rows[r["step"] - ADA_INTERVAL:r["step"]]])
            p = np.clip(p + np.sign(mean - 0.4) * np.float32(0.64), 0, 1)
        expected.append(float(p))
    assert np.allclose([r["augment_p"] for r in rows], expected, atol=1e-6)
    assert expected[3] > 0  # r_t on 32 images starts above the target: p rose at step 4
    assert a["augment_p/.ATTRIBUTES/VARIABLE_VALUE"] == rows[-1]["augment_p"]
    assert a["augment_r_t/.ATTRIBUTES/VARIABLE_VALUE"] == np.float32(rows[-1]["r_t"])  # step 9's


def test_ada_with_p_held_at_0_trains_exactly_as_no_augmentation(compose_cfg, tmp_path):
    """Augmentation draws from its own seeds: with p kept near 0 (0 to 1 in 10^9 kimg), so no
    image is augmented, every weight, G's noise included, is what train.augment=none gives."""
    from ganctl.training.loop import train

    runs = {name: tmp_path / name for name in ("none", "ada")}
    common = ["dataset=mnist", "dataset.limit=32", "train.batch_size=16", "train.steps=6",
              "train.deterministic=true"]
    for run in runs.values():
        run.mkdir()
    train(compose_cfg(common), runs["none"])
    train(compose_cfg([*common, "train.augment=ada", "train.ada_kimg=1e9"]), runs["ada"])
    none, ada = (tensors(run / "checkpoints/ckpt-6") for run in runs.values())
    assert ada["augment_p/.ATTRIBUTES/VARIABLE_VALUE"] < 1e-6
    ada_only = {k for k in ada if k.startswith("augment_")} | {"_CHECKPOINTABLE_OBJECT_GRAPH"}
    assert set(ada) - ada_only == set(none) - {"_CHECKPOINTABLE_OBJECT_GRAPH"}
    assert [k for k in set(ada) - ada_only if not np.array_equal(ada[k], none[k])] == []


def test_a_run_from_before_the_r_t_sum_resumes(compose_cfg, tmp_path, caplog):
    """A checkpoint written without ada's r_t sum (by ganctl before it) still resumes."""
    from ganctl.core.checkpoints import Checkpoints
    from ganctl.core.components import build_dataset
    from ganctl.core.state import build_training_state
    from ganctl.training.loop import train

    cfg = compose_cfg([*ADA, "train.steps=6"])
    train(cfg, tmp_path)
    directory = tmp_path / "checkpoints"
    trackables = build_training_state(cfg, build_dataset(cfg.dataset)).trackables()
    Checkpoints(directory, **trackables).restore(6)
    # ckpt-6 rewritten as the older ganctl wrote it: every other object, with the same values.
    del trackables["augment_r_t"]
    for path in directory.glob("ckpt-*"):
        path.unlink()
    Checkpoints(directory, **trackables).save(6)
    assert "augment_r_t/.ATTRIBUTES/VARIABLE_VALUE" not in tensors(directory / "ckpt-6")

    with caplog.at_level("INFO", logger="ganctl"):
        train(compose_cfg([*ADA, "train.steps=9"]), tmp_path, resuming=True)
    assert "was written before ganctl saved augment_r_t" in caplog.text
    assert Checkpoints(directory).steps()[-1] == 9


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
    from ganctl.training.augment import ADA_INTERVAL
    from ganctl.training.steps import make_train_step

    def p_moves(overrides):
        """How far p moved after each of the first ADA_INTERVAL steps."""
        cfg = compose_cfg(["dataset=mnist", "dataset.limit=32", "train.batch_size=16",
                           "train.augment=ada", "train.ada_target=0.4", *overrides])
        keras.utils.set_random_seed(0)
        dataset = build_dataset(cfg.dataset)
        state = build_training_state(cfg, dataset)
        step = make_train_step(state)
        state.augment_probability.assign(0.5)  # mid-range, so neither direction is clipped
        moved = []
        for batch in dataset.tf_dataset(16, seed=0).take(ADA_INTERVAL):
            step(*batch)
            moved.append(round(abs(float(state.augment_probability.numpy()) - 0.5), 6))
        # 4 x 16 reals give a mean r_t in steps of 1/32, never the 0.4 target: p always moves.
        return moved

    # batch 16: 250 steps are 4 kimg, 5% of it 0.2 kimg, so 4 steps move p by 64 / 200.
    assert p_moves(["train.steps=250"]) == [0, 0, 0, 0.32]
    assert p_moves(["train.steps=500"]) == [0, 0, 0, 0.16]
    assert p_moves(["train.steps=250", "train.ada_kimg=0.8"]) == [0, 0, 0, 0.08]
