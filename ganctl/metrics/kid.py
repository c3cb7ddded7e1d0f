"""Kernel Inception Distance (Binkowski et al. 2018): unbiased MMD^2 with a cubic polynomial kernel.

Unlike FID it has an unbiased estimator, so its expected value is 0 for two samples of one
distribution at any sample size, and it is averaged over random subsets to get a mean and a std.
"""
from __future__ import annotations

import numpy as np

from ganctl.errors import UserError
from ganctl.metrics import checks


def polynomial_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """k(x, y) = (x . y / d + 1)^3, the kernel of the KID paper."""
    gram = x @ y.T
    gram /= x.shape[1]
    gram += 1.0
    cube = gram * gram  # in place and without ** 3: the kernel dominates KID's run time
    cube *= gram
    return cube


def mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD^2 between samples x (m, d) and y (n, d): the within-set terms skip i == j."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    m, n = len(x), len(y)
    k_xx, k_yy, k_xy = polynomial_kernel(x, x), polynomial_kernel(y, y), polynomial_kernel(x, y)
    within_x = (k_xx.sum() - np.trace(k_xx)) / (m * (m - 1))
    within_y = (k_yy.sum() - np.trace(k_yy)) / (n * (n - 1))
    return float(within_x + within_y - 2.0 * k_xy.mean())


def kid(real_features: np.ndarray, fake_features: np.ndarray, num_subsets: int = 100,
        subset_size: int = 1000, seed: int = 0) -> tuple[float, float]:
    """(mean, std) of unbiased MMD^2 over `num_subsets` random subsets of min(subset_size, n).

    Each subset is drawn without replacement from each set, so memory is subset_size^2, not n^2.
    """
    real_features, fake_features = checks.feature_pair(real_features, fake_features, "KID")
    size = min(subset_size, len(real_features), len(fake_features))
    if size < 2:
        raise UserError(f"KID needs at least 2 samples per set, got {len(real_features)} real "
                        f"and {len(fake_features)} fake. Raise num= "
                        "(ganctl eval num=...; train.eval_num=... in training).")
    rng = np.random.default_rng(seed)
    estimates = np.empty(num_subsets)
    for i in range(num_subsets):
        real_subset = real_features[rng.choice(len(real_features), size, replace=False)]
        fake_subset = fake_features[rng.choice(len(fake_features), size, replace=False)]
        estimates[i] = mmd2_unbiased(real_subset, fake_subset)
    return float(estimates.mean()), float(estimates.std())
