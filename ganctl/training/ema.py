"""The decay of G's exponential moving average, per step, as a function of the step counter.

Two rules, chosen by train.ema_kimg:
- null (runs made before it existed, and any run that sets only train.ema): a fixed decay
  `train.ema` with TF's num_updates warm-up, min(ema, (1 + t) / (10 + t)).
- a horizon in images (StyleGAN's ema_kimg / ema_rampup, Karras et al. 2019-2020): the average's
  half-life is ema_kimg * 1000 images, so the decay per step is
  0.5 ** (images_per_step / ema_nimg). With train.ema_rampup=r the half-life is at most r times
  the images seen so far, ema_nimg = min(ema_kimg * 1000, images_seen * r): a short run, or the
  early phase of a long one, is not averaged with the random initialisation or with the modes G
  visited long ago (a generator hopping between modes, averaged into the middle of them).

Both are pure functions of the step variable, so a resumed run continues the same average.
"""
from __future__ import annotations

from keras import ops


def fixed_decay(ema: float):
    def decay(step):
        t = ops.cast(step, "float32")
        return ops.minimum(ema, (1.0 + t) / (10.0 + t))
    return decay


def horizon_decay(ema_kimg: float, images_per_step: int, ema_rampup: float | None = None):
    def decay(step):
        seen = (ops.cast(step, "float32") + 1.0) * images_per_step  # after this update
        horizon = ema_kimg * 1000.0
        if ema_rampup:
            horizon = ops.minimum(horizon, seen * ema_rampup)
        return ops.power(0.5, images_per_step / ops.maximum(horizon, 1e-8))
    return decay


def ema_schedule(train_cfg, images_per_step: int):
    """The decay rule train_cfg asks for (train.ema > 0; train.ema=0 keeps no average)."""
    kimg = train_cfg.get("ema_kimg")
    if kimg is None:
        return fixed_decay(float(train_cfg.ema))
    return horizon_decay(float(kimg), images_per_step, train_cfg.get("ema_rampup"))
