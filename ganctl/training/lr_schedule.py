"""The learning rates per step: an optional linear warm-up, constant, then (with
train.lr_decay_start) linear to 0.

The warm-up (train.lr_warmup_kimg, Goyal et al. 2017) ramps the rates from near 0 to
train.g_lr / train.d_lr over the first thousands of images, so a large batch's larger rate does
not throw the first updates off. The decay is CycleGAN's schedule (Zhu et al. 2017) and a common
cure for GANs that keep oscillating around the data: the rates stay at train.g_lr / train.d_lr
until step `lr_decay_start`, then fall linearly to 0 at train.steps. A pure function of the step
variable, so a resumed run continues on the same schedule; the optimizers' own learning-rate
variables carry the value.
"""
from __future__ import annotations

from keras import ops


def lr_scale(step, steps: int, decay_start: int | None, warmup: int = 0):
    """The factor on the base rates for the update made at `step` (0-based): (step + 1) / warmup
    during the warm-up, 1 after it, then (steps - step) / (steps - decay_start), which is 0 at
    step == steps. None when neither is set: the rates stay as the optimizers hold them."""
    if decay_start is None and not warmup:
        return None
    t = ops.cast(step, "float32")
    scale = 1.0
    if warmup:
        scale = ops.minimum((t + 1.0) / float(warmup), 1.0)
    if decay_start is not None:
        remaining = ops.cast(steps, "float32") - t
        scale = scale * ops.clip(remaining / float(steps - decay_start), 0.0, 1.0)
    return scale


def apply_lr_schedule(optimizers: dict, learning_rates: dict, scale) -> None:
    """Sets each optimizer's rate to its base rate times `scale` (None: leaves them alone)."""
    if scale is None:
        return
    for name, optimizer in optimizers.items():
        optimizer.learning_rate.assign(ops.cast(learning_rates[name] * scale,
                                                optimizer.learning_rate.dtype))
