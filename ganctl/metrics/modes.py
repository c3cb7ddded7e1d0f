"""Mode-collapse metrics: 2-D Gaussian mixtures (ring, grid) and classified modes (Stacked MNIST).

Mixtures follow Unrolled GAN / VEEGAN / PacGAN: a sample is high quality when it lies within
3 standard deviations of its nearest mode, and it is assigned to that mode. A mode is covered when
it receives at least max(1, ceil(min_share * N / K)) high-quality samples, i.e. min_share (default
1%) of the count a perfect generator would give it. The threshold scales with N, so results do not
depend on eval.num, and a few stray samples do not count as a mode. (PacGAN's "fewer than 20 of
2,500 samples on 25 modes means lost" is min_share=0.2.)

Stacked MNIST (VEEGAN, PacGAN): the mode of an image is the 3-digit number its channels show,
read by a classifier; modes covered out of 1,000 counts modes with at least one sample.
"""
from __future__ import annotations

import math

import numpy as np

HIGH_QUALITY_STDS = 3.0
DEFAULT_MIN_SHARE = 0.01


def mixture_modes(points: np.ndarray, modes: np.ndarray, std: float,
                  min_share: float = DEFAULT_MIN_SHARE) -> dict[str, float]:
    """modes_covered, modes_total, high_quality (share within 3 std of the nearest mode), kl
    (KL of the high-quality samples' mode histogram from uniform; 0 = perfectly balanced) and
    kl_floor (label_modes')."""
    points, modes = np.asarray(points, np.float64), np.asarray(modes, np.float64)
    if points.ndim != 2 or modes.ndim != 2 or points.shape[1] != modes.shape[1]:
        raise ValueError(f"mixture_modes: points {points.shape} and modes {modes.shape} must be "
                         "(N, d) and (K, d)")
    num_modes = len(modes)
    # (N, K) is small for mixtures (K <= 25), so no blocking is needed here.
    distances = np.linalg.norm(points[:, None, :] - modes[None, :, :], axis=-1)
    nearest = distances.argmin(axis=1)
    high_quality = distances[np.arange(len(points)), nearest] <= HIGH_QUALITY_STDS * std
    counts = np.bincount(nearest[high_quality], minlength=num_modes)
    min_count = max(1, math.ceil(min_share * len(points) / num_modes))
    return {
        "modes_covered": float((counts >= min_count).sum()),
        "modes_total": float(num_modes),
        "high_quality": float(high_quality.mean()),
        "kl": kl_from_uniform(counts),
        "kl_floor": uniform_sampling_kl(int(counts.sum()), num_modes),
    }


def label_modes(labels: np.ndarray, num_modes: int, min_count: int = 1) -> dict[str, float]:
    """modes_covered (labels seen at least min_count times), modes_total, kl from uniform, and
    kl_floor: the kl a perfectly uniform generator scores with as many samples."""
    labels = np.asarray(labels, np.int64).ravel()
    counts = np.bincount(labels, minlength=num_modes)
    if len(counts) > num_modes:
        raise ValueError(f"label_modes: label {labels.max()} is outside 0..{num_modes - 1}")
    return {
        "modes_covered": float((counts >= min_count).sum()),
        "modes_total": float(num_modes),
        "kl": kl_from_uniform(counts),
        "kl_floor": uniform_sampling_kl(len(labels), num_modes),
    }


def uniform_sampling_kl(num_samples: int, num_modes: int, draws: int = 64) -> float:
    """Mean KL from uniform of the histograms of num_samples draws from an exactly uniform
    distribution (about (K - 1) / 2N): sampling alone, which a measured kl cannot go below.
    With 1,000 modes that is 0.05 at 10,000 samples, the size of the targets it is read against.
    Seeded, so the same counts give the same floor."""
    if num_samples == 0:
        return float("nan")
    counts = np.random.default_rng(0).multinomial(num_samples, np.full(num_modes, 1 / num_modes),
                                                  size=draws)
    return float(np.mean([kl_from_uniform(c) for c in counts]))


def stacked_mnist_modes(digits: np.ndarray) -> dict[str, float]:
    """Modes of Stacked MNIST from per-channel digit predictions (N, 3): 100*d0 + 10*d1 + d2."""
    digits = np.asarray(digits, np.int64)
    if digits.ndim != 2 or digits.shape[1] != 3:
        raise ValueError(f"stacked_mnist_modes: digits must be (N, 3), got {digits.shape}")
    return label_modes(digits @ np.array([100, 10, 1]), 1000)


def kl_from_uniform(counts: np.ndarray) -> float:
    """KL(p || uniform) of a histogram: log K - H(p). Empty bins are fine (0 log 0 = 0)."""
    counts = np.asarray(counts, np.float64)
    total = counts.sum()
    if total == 0:
        return float("nan")    # no samples at all (e.g. none high quality): KL is undefined
    p = counts[counts > 0] / total
    return float(np.sum(p * np.log(p * len(counts))))
