"""train.lr_warmup_kimg and train.lr_decay_start: a linear warm-up, constant learning rates,
then linear to 0 at train.steps (ganctl/training/lr_schedule.py), applied inside the compiled
step and resumed exactly."""
from __future__ import annotations

import numpy as np
import pytest

from ganctl.config import warmup_steps
from ganctl.training.lr_schedule import lr_scale
from tests.helpers import refusal


def test_scale_is_one_until_the_decay_then_linear_to_zero_at_the_last_step():
    scales = [float(lr_scale(np.int64(step), 10, 6)) for step in range(11)]
    assert scales[:7] == [1.0] * 7
    np.testing.assert_allclose(scales[6:], [1.0, 0.75, 0.5, 0.25, 0.0], atol=1e-7)
    assert lr_scale(np.int64(3), 10, None) is None  # no schedule: the rates stay as set


def test_warm_up_rises_linearly_over_its_images_then_meets_the_decay():
    assert warmup_steps(None, 64) == 0
    assert warmup_steps(0.256, 64) == 4        # 256 images of 64: 4 updates
    assert warmup_steps(0.1, 64) == 2          # a part-filled step still counts
    scales = [float(lr_scale(np.int64(step), 10, 6, warmup=4)) for step in range(11)]
    np.testing.assert_allclose(scales[:4], [0.25, 0.5, 0.75, 1.0], atol=1e-7)
    assert scales[4:7] == [1.0] * 3
    np.testing.assert_allclose(scales[6:], [1.0, 0.75, 0.5, 0.25, 0.0], atol=1e-7)
    # Warm-up alone: 1 after it, no decay.
    assert [float(lr_scale(np.int64(step), 10, None, warmup=2)) for step in (0, 1, 9)] == [0.5, 1.0, 1.0]


def rates_per_update(compose_cfg, overrides, updates):
    """Each optimizer's rate after each of the first `updates` compiled steps on a ring run."""
    from ganctl.core.components import build_dataset
    from ganctl.core.state import build_training_state
    from ganctl.training.steps import make_train_step

    cfg = compose_cfg(["dataset=ring", *overrides])
    dataset = build_dataset(cfg.dataset)
    state = build_training_state(cfg, dataset)
    step = make_train_step(state)
    images, labels = next(iter(dataset.tf_dataset(cfg.train.batch_size, seed=0)))
    seen = {name: [] for name in state.optimizers}
    for _ in range(updates):
        step(images, labels)
        for name, optimizer in state.optimizers.items():
            seen[name].append(float(optimizer.learning_rate.numpy()))
    return seen


def test_the_compiled_step_sets_both_optimizers_rates(compose_cfg, data_overrides):
    seen = rates_per_update(compose_cfg, ["train.steps=4", "train.lr_decay_start=2",
                                          "train.g_lr=1e-3", "train.d_lr=4e-3",
                                          *data_overrides["ring"]], 4)
    # Updates 0-2 at the full rate, update 3 at (4 - 3) / (4 - 2) of it.
    assert seen["generator"] == pytest.approx([1e-3, 1e-3, 1e-3, 5e-4])
    assert seen["discriminator"] == pytest.approx([4e-3, 4e-3, 4e-3, 2e-3])


def test_the_compiled_step_warms_up_both_optimizers_by_images_not_steps(compose_cfg,
                                                                        data_overrides):
    # 0.096 kimg at batch 32 is 3 updates.
    seen = rates_per_update(compose_cfg, ["train.steps=5", "train.batch_size=32",
                                          "train.lr_warmup_kimg=0.096", "train.g_lr=3e-3",
                                          "train.d_lr=6e-3", *data_overrides["ring"]], 4)
    assert seen["generator"] == pytest.approx([1e-3, 2e-3, 3e-3, 3e-3])
    assert seen["discriminator"] == pytest.approx([2e-3, 4e-3, 6e-3, 6e-3])


def test_ema_horizon_and_lr_schedule_resume_exactly_and_change_the_weights(
        compose_cfg, data_overrides, tmp_path):
    """6 steps in one go and 3 + 3 with a resume give the same EMA weights: the learning rate
    and the EMA decay (a horizon with ramp-up, on here) are functions of the checkpointed step
    alone. And the weights differ from a run without the decay. (test_ema.py relies on this
    test for the EMA horizon's resume.)"""
    import keras

    from ganctl.training.loop import train

    common = ["dataset=ring", "train.checkpoint_every=3", "train.deterministic=true",
              "train.g_lr=1e-2", "train.d_lr=1e-2", "train.ema_kimg=0.05",
              "train.ema_rampup=0.5", *data_overrides["ring"]]
    # A warm-up over the first 2 steps (0.032 kimg at batch 16), the decay from step 2; the
    # split run's first 3 steps have the same rates as the straight run's.
    decayed = [*common, "train.batch_size=16", "train.lr_warmup_kimg=0.032",
               "train.lr_decay_start=2"]
    runs = {name: tmp_path / name for name in ("straight", "split", "constant")}
    for run in runs.values():
        run.mkdir()
    train(compose_cfg([*decayed, "train.steps=6"]), runs["straight"])
    train(compose_cfg([*decayed, "train.steps=3"]), runs["split"])
    train(compose_cfg([*decayed, "train.steps=6"]), runs["split"], resuming=True)
    train(compose_cfg([*common, "train.steps=6"]), runs["constant"])

    def weights(name):
        return keras.saving.load_model(runs[name] / "generator.keras", safe_mode=True).get_weights()

    assert len(weights("straight")) == len(weights("split")) > 0
    for a, b in zip(weights("straight"), weights("split")):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, b) for a, b in zip(weights("straight"), weights("constant")))


def test_a_decay_that_never_starts_is_one_paragraph(compose_cfg):
    problem = refusal(compose_cfg, ["train.steps=100", "train.lr_decay_start=100"])
    assert "train.lr_decay_start=100" in problem and "train.lr_decay_start=50" in problem


def test_a_warm_up_as_long_as_the_run_is_one_paragraph_that_names_a_fitting_value(compose_cfg):
    problem = refusal(compose_cfg, ["train.steps=100", "train.batch_size=64",
                                    "train.lr_warmup_kimg=6.4"])
    assert "train.lr_warmup_kimg=6.4" in problem and "100 steps" in problem
    assert "train.lr_warmup_kimg=0.64" in problem
    compose_cfg(["train.steps=100", "train.batch_size=64", "train.lr_warmup_kimg=0.64"])
