"""train.lr_decay_start: constant learning rates, then linear to 0 at train.steps
(ganctl/training/lr_schedule.py), applied inside the compiled step and resumed exactly."""
from __future__ import annotations

import numpy as np
import pytest

from ganctl.errors import UserError
from ganctl.training.lr_schedule import lr_scale


def test_scale_is_one_until_the_decay_then_linear_to_zero_at_the_last_step():
    scales = [float(lr_scale(np.int64(step), 10, 6)) for step in range(11)]
    assert scales[:7] == [1.0] * 7
    np.testing.assert_allclose(scales[6:], [1.0, 0.75, 0.5, 0.25, 0.0], atol=1e-7)
    assert lr_scale(np.int64(3), 10, None) is None  # no schedule: the rates stay as set


def test_the_compiled_step_sets_both_optimizers_rates(compose_cfg, data_overrides):
    from ganctl.core.components import build_dataset
    from ganctl.core.state import build_training_state
    from ganctl.training.steps import make_train_step

    cfg = compose_cfg(["dataset=ring", "train.steps=4", "train.lr_decay_start=2",
                       "train.g_lr=1e-3", "train.d_lr=4e-3", *data_overrides["ring"]])
    dataset = build_dataset(cfg.dataset)
    state = build_training_state(cfg, dataset)
    step = make_train_step(state)
    images, labels = next(iter(dataset.tf_dataset(cfg.train.batch_size, seed=0)))
    seen = []
    for _ in range(4):
        step(images, labels)
        seen.append({name: float(opt.learning_rate.numpy())
                     for name, opt in state.optimizers.items()})
    # Updates 0-2 at the full rate, update 3 at (4 - 3) / (4 - 2) of it.
    assert [s["generator"] for s in seen] == pytest.approx([1e-3, 1e-3, 1e-3, 5e-4])
    assert [s["discriminator"] for s in seen] == pytest.approx([4e-3, 4e-3, 4e-3, 2e-3])


def test_ema_horizon_and_lr_decay_resume_exactly_and_the_decay_changes_the_weights(
        compose_cfg, data_overrides, tmp_path):
    """4 steps in one go and 2 + 2 with a resume give the same EMA weights: the learning rate
    and the EMA decay (a horizon with ramp-up, on here) are functions of the checkpointed step
    alone. And the weights differ from a run without the decay. (test_ema.py relies on this
    test for the EMA horizon's resume.)"""
    import keras

    from ganctl.training.loop import train

    common = ["dataset=ring", "train.checkpoint_every=2", "train.deterministic=true",
              "train.g_lr=1e-2", "train.d_lr=1e-2", "train.ema_kimg=0.05",
              "train.ema_rampup=0.5", *data_overrides["ring"]]
    decayed = [*common, "train.lr_decay_start=1"]
    runs = {name: tmp_path / name for name in ("straight", "split", "constant")}
    for run in runs.values():
        run.mkdir()
    train(compose_cfg([*decayed, "train.steps=4"]), runs["straight"])
    train(compose_cfg([*decayed, "train.steps=2"]), runs["split"])
    train(compose_cfg([*decayed, "train.steps=4"]), runs["split"], resuming=True)
    train(compose_cfg([*common, "train.steps=4"]), runs["constant"])

    def weights(name):
        return keras.saving.load_model(runs[name] / "generator.keras", safe_mode=True).get_weights()

    assert len(weights("straight")) == len(weights("split")) > 0
    for a, b in zip(weights("straight"), weights("split")):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, b) for a, b in zip(weights("straight"), weights("constant")))


def test_a_decay_that_never_starts_is_one_paragraph(compose_cfg):
    with pytest.raises(UserError) as caught:
        compose_cfg(["train.steps=100", "train.lr_decay_start=100"])
    problem = str(caught.value)
    assert "train.lr_decay_start=100" in problem and "train.lr_decay_start=50" in problem
    assert "\n" not in problem
