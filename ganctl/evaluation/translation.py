"""Scoring an image-to-image run: its generator translates the test split's inputs, which are
compared with the target domain (FID, KID) and, for paired data, with each input's own target
(L1, PSNR, SSIM)."""
from __future__ import annotations

import numpy as np

from ganctl.evaluation.scoring import evaluate

# FID and KID vary with the number of images; below about this many they are noisy and
# FID is biased upwards, so they compare only with runs scored on the same images.
FEW_IMAGES = 2000
PIXEL_METRICS = ("l1", "psnr", "ssim")


def score_translation(generator, dataset, metric_names, extractor, *, num: int,
                      direction: str = "AtoB", reverse=None, seed: int = 0,
                      batch_size: int = 250) -> dict:
    """Metric values and provenance, as `evaluate` gives them, plus the paired pixel metrics.

    l1: mean |G(a) - b| in [-1, 1] units (the training loss's scale); psnr and ssim: on uint8
    images (max value 255), averaged over the test images. With `reverse`, the generator back
    (CycleGAN's), also cycle_l1: mean |reverse(G(x)) - x| in the same units.
    """
    from ganctl.core.translation import translate
    from ganctl.images import to_uint8

    a, b = dataset.pairs("test", limit=num)
    inputs, targets = (a, b) if direction == "AtoB" else (b, a)
    names = ["fid", "kid"] if list(metric_names) in (["auto"], []) else list(metric_names)
    outputs = translate(generator, inputs, batch_size=min(batch_size, 64))
    result = evaluate(to_uint8(outputs), targets, names, extractor, seed=seed,
                      batch_size=batch_size)
    if dataset.paired:
        result["metrics"].update(pixel_metrics(outputs, targets))
    if reverse is not None:
        cycled = translate(reverse, outputs, batch_size=min(batch_size, 64))
        result["metrics"]["cycle_l1"] = float(np.mean(np.abs(
            cycled - inputs.astype(np.float32) / 127.5 + 1.0)))
    if min(len(inputs), len(targets)) < FEW_IMAGES:
        result.setdefault("notes", []).append(
            f"FID and KID from {len(inputs)} translated test images against {len(targets)} "
            f"target images, fewer than about {FEW_IMAGES:,}: they are noisy (FID biased "
            "upwards), so compare them only with runs scored on the same test split.")
    result.update(direction=direction, real_split="test", paired=bool(dataset.paired))
    return result


def pixel_metrics(outputs: np.ndarray, targets: np.ndarray) -> dict:
    """Mean L1 ([-1, 1] units), PSNR (dB) and SSIM of outputs (floats in [-1, 1]) against their
    uint8 targets."""
    import tensorflow as tf

    from ganctl.images import to_uint8

    target_float = targets.astype(np.float32) / 127.5 - 1.0
    fake, real = (tf.constant(x.astype(np.float32)) for x in (to_uint8(outputs), targets))
    return {"l1": float(np.mean(np.abs(outputs - target_float))),
            "psnr": float(tf.reduce_mean(tf.image.psnr(fake, real, max_val=255.0))),
            "ssim": float(tf.reduce_mean(tf.image.ssim(fake, real, max_val=255.0)))}
