"""The EMA decay rules (ganctl/training/ema.py): a horizon in images with ramp-up, and the old
fixed decay for runs that set only train.ema."""
from __future__ import annotations

import numpy as np
import pytest
from omegaconf import OmegaConf

from ganctl.training.ema import ema_schedule
from tests.helpers import refusal


def _decay(train, images_per_step, step):
    return float(ema_schedule(OmegaConf.create(train), images_per_step)(np.int64(step)))


def test_horizon_is_a_half_life_in_images():
    # 10 kimg at 100 images per step: after 100 steps the weight of the old average is 1/2.
    decay = _decay({"ema": 0.999, "ema_kimg": 10.0, "ema_rampup": None}, 100, 5000)
    assert decay ** 100 == pytest.approx(0.5, rel=1e-4)


def test_rampup_limits_the_horizon_to_a_share_of_the_images_seen():
    train = {"ema": 0.999, "ema_kimg": 10.0, "ema_rampup": 0.5}
    # Step 9 (1,000 images seen after it): half-life 500 images = 5 steps of 100.
    assert _decay(train, 100, 9) ** 5 == pytest.approx(0.5, rel=1e-4)
    # Once 20,000 images are seen, 0.5 x seen passes 10 kimg and the horizon stays there.
    assert _decay(train, 100, 1000) == pytest.approx(_decay(train, 100, 100000), rel=1e-6)
    assert _decay(train, 100, 0) < 0.3  # the first step mostly copies G


def test_train_ema_alone_keeps_the_old_rule():
    old = {"ema": 0.999}  # a config.yaml written before ema_kimg existed
    for step in (0, 10, 100000):
        assert _decay(old, 64, step) == pytest.approx(min(0.999, (1 + step) / (10 + step)))


@pytest.mark.parametrize("overrides,word", [(["train.ema=0", "train.ema_kimg=10"], "ema=0"),
                                            (["train.ema=0.9", "train.ema_rampup=0.05"],
                                             "ema_kimg")])
def test_settings_that_do_nothing_are_one_paragraph(overrides, word, compose_cfg):
    assert word in refusal(compose_cfg, overrides)


# That the EMA horizon resumes exactly (6 steps in one go == 3 + 3 with a resume) is asserted by
# tests/test_lr_schedule.py::test_ema_horizon_and_lr_schedule_resume_exactly_and_change_the_weights,
# whose runs have train.ema_kimg and train.ema_rampup on: one set of trainings for both.
