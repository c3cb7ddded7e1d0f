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


def fixed_decay(ema: float):
    from keras import ops  # here, not above: validate.py imports check_ema, and must stay TF-free

    def decay(step):
        t = ops.cast(step, "float32")
        return ops.minimum(ema, (1.0 + t) / (10.0 + t))
    return decay


def horizon_decay(ema_kimg: float, images_per_step: int, ema_rampup: float | None = None):
    from keras import ops

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


def check_ema(train_cfg) -> str | None:
    """What is inconsistent in the EMA settings, or None."""
    kimg, rampup = train_cfg.get("ema_kimg"), train_cfg.get("ema_rampup")
    if train_cfg.ema == 0 and (kimg is not None or rampup is not None):
        return (f"train.ema=0 keeps no average of G, so train.ema_kimg={kimg} and "
                f"train.ema_rampup={rampup} have no effect; set train.ema to a decay > 0 (e.g. "
                "0.999) to keep one, or set train.ema_kimg=null train.ema_rampup=null.")
    if rampup is not None and kimg is None:
        return (f"train.ema_rampup={rampup} limits the horizon of train.ema_kimg, which is null "
                "(a fixed decay train.ema); set train.ema_kimg too (e.g. train.ema_kimg=10).")
    return None
