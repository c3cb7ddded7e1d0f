"""DiffAugment (Zhao et al. 2020): random, differentiable transforms of every image D sees.

Real and fake images alike pass through them before each D call, in the D step and the G step,
so D cannot memorise a small training set while G still gets gradients through the transforms.
The transforms follow the paper's code for images in [-1, 1]: colour (brightness, saturation,
contrast), translation by up to 1/8 of the size with zero padding, cutout of a 1/2-size square.
Their randomness has a SeedGenerator of its own, reseeded every step from (seed, step): turning
augmentation on leaves G's noise and every other draw of the run as they were (so
`train.augment=ada` with p at 0 trains exactly as `none`), a resume continues it exactly with
nothing more in the checkpoint, and each draw is one device's draw under train.strategy
(replicas.replica_rows).
"""
from __future__ import annotations

import keras
import tensorflow as tf
from keras import ops

from ganctl.errors import UserError
from ganctl.replicas import replica_rows


def _per_example(images, seed_generator, low: float, high: float):
    """One uniform draw per example, shaped to broadcast over (H, W, C)."""
    shape = (ops.shape(images)[0], 1, 1, 1)
    draw = replica_rows(lambda s: keras.random.uniform(s, low, high, seed=seed_generator), shape)
    return ops.cast(draw, images.dtype)


def _per_example_ints(seed_generator, batch_size, low: int, high: int):
    """One integer in [low, high) per example, shaped (B, 1)."""
    return replica_rows(lambda s: keras.random.randint(s, low, high, seed=seed_generator),
                        (batch_size, 1))


def brightness(images, seed_generator):
    return images + _per_example(images, seed_generator, -0.5, 0.5)


def saturation(images, seed_generator):
    mean = ops.mean(images, axis=3, keepdims=True)  # grey: saturation leaves one channel as is
    return (images - mean) * _per_example(images, seed_generator, 0.0, 2.0) + mean


def contrast(images, seed_generator):
    mean = ops.mean(images, axis=(1, 2, 3), keepdims=True)
    return (images - mean) * _per_example(images, seed_generator, 0.5, 1.5) + mean


def translation(images, seed_generator, ratio: float = 1 / 8):
    """Shift each image by up to `ratio` of its height and width; uncovered pixels are 0."""
    batch_size = ops.shape(images)[0]
    for axis in (1, 2):
        size = int(images.shape[axis])
        limit = int(size * ratio + 0.5)
        shift = _per_example_ints(seed_generator, batch_size, -limit, limit + 1)
        source = ops.arange(size, dtype="int32")[None, :] - shift  # (B, size): row/column read
        inside = ops.cast((source >= 0) & (source < size), images.dtype)
        # A gather, so the gradient reaches exactly the input pixels that were read.
        images = tf.gather(images, ops.clip(source, 0, size - 1), axis=axis, batch_dims=1)
        images = images * (inside[:, :, None, None] if axis == 1 else inside[:, None, :, None])
    return images


def cutout(images, seed_generator, ratio: float = 1 / 2):
    """Zero one square of `ratio` of the size per image, centred anywhere (clipped at edges)."""
    batch_size = ops.shape(images)[0]
    inside = []
    for axis in (1, 2):
        size = int(images.shape[axis])
        cut = int(size * ratio + 0.5)
        centre = _per_example_ints(seed_generator, batch_size, 0, size + 1 - cut % 2)
        start = centre - cut // 2
        position = ops.arange(size, dtype="int32")[None, :]
        inside.append(ops.cast((position >= start) & (position < start + cut), images.dtype))
    rows, columns = inside
    return images * (1 - rows[:, :, None, None] * columns[:, None, :, None])


# train.ada_kimg=null: p may cross 0 -> 1 in this share of the run. ADA's 500 kimg is about 2% of
# the paper's 25,000 kimg runs; at 500 a 384 kimg run moved p to only 0.10 while D overfit (FID
# 40.4 vs none 40.9), at 20 kimg (~5%) p followed r_t and FID fell to 32.7 (README, ADA table).
ADA_RUN_SHARE = 0.05
ADA_PAPER_KIMG = 500.0
# ADA adjusts p once every 4 steps from r_t over their 4 real batches (256 images at batch 64):
# from one batch of 64, r_t's noise moved p up to 0.5-0.64 on a D that never overfit (README).
ADA_INTERVAL = 4
# The augmentation seeds of a step are (step, seed x this + draw): a step draws far fewer, so no
# two seeds share a draw.
_DRAWS_PER_STEP = 1 << 16


def ada_kimg(train_cfg, images_per_step: int) -> float:
    """The thousands of images in which ADA's p may go from 0 to 1: train.ada_kimg if set, else
    ADA_RUN_SHARE of the run's images, at most the paper's 500."""
    if train_cfg.get("ada_kimg") is not None:
        return float(train_cfg.ada_kimg)
    run_kimg = train_cfg.steps * images_per_step / 1000.0
    return min(ADA_PAPER_KIMG, ADA_RUN_SHARE * run_kimg)


def reseed(seed_generator, seed: int, step) -> None:
    """Set the augmentation seeds for the step about to run: a pure function of (seed, step)."""
    seed_generator.state.assign(ops.stack([ops.cast(step, "int64"),
                                           ops.cast(seed * _DRAWS_PER_STEP, "int64")]))


POLICIES = {"color": (brightness, saturation, contrast), "translation": (translation,),
            "cutout": (cutout,)}


def make_augment(policy, seed_generator, probability=None):
    """images -> augmented images for a policy: transform names, as a list or the paper's
    comma-separated string ("color,translation,cutout"); "none" gives the identity.

    The transforms need image batches (B, H, W, C); asking for them on 2-D points is a
    UserError rather than silently doing nothing.
    `probability` (train.augment=ada's p, a variable): each transform changes an image with
    that probability, drawn per image and per transform (ADA's stochastic pipeline); None: always.
    """
    if policy == "none":
        names = []
    else:
        names = [n.strip() for n in (policy.split(",") if isinstance(policy, str) else policy)]
        unknown = [n for n in names if n not in POLICIES]
        if unknown or not names:
            found = f"; unknown: {', '.join(unknown)}." if unknown else "."
            raise UserError(f"train.augment_policy={names} must list one or more of: "
                            f"{', '.join(POLICIES)}{found}")
    transforms = [transform for name in names for transform in POLICIES[name]]

    def augment(images):
        if not transforms:
            return images
        if len(images.shape) != 4:
            raise UserError(f"train.augment={'ada' if probability is not None else 'diffaug'} "
                            "transforms images, but this dataset gives shape "
                            f"{tuple(images.shape[1:])}; use train.augment=none for points.")
        for transform in transforms:
            changed = transform(images, seed_generator)
            if probability is None:
                images = changed
            else:
                chosen = _per_example(images, seed_generator, 0.0, 1.0) < ops.cast(
                    probability, images.dtype)
                images = ops.where(chosen, changed, images)
        return images

    return augment
