"""Frechet Inception Distance (Heusel et al. 2017): the Frechet distance of two Gaussian fits.

Pure numpy/scipy in float64. The feature matrices may be float32 and large (50,000 x 2048); the
mean and covariance are accumulated in row blocks so no float64 copy of a whole set is made.
"""
from __future__ import annotations

import warnings

import numpy as np
import scipy.linalg

from ganctl.errors import UserError
from ganctl.metrics import checks

# sqrtm is accepted when ||X @ X - A||_F / ||A||_F is below this; above it the product is treated
# as (numerically) singular and retried with an eps * I offset, as in pytorch-fid / TTUR.
SQRTM_TOLERANCE = 1e-5
# Imaginary parts this large on the diagonal mean the root is not trustworthy (pytorch-fid's bound).
IMAGINARY_TOLERANCE = 1e-3


def mean_and_covariance(features: np.ndarray,
                        block_rows: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Sample mean and unbiased covariance (like np.cov(rowvar=False)), accumulated in float64.

    Centred on the first row before summing, so the one-pass formula does not lose precision when
    the mean is large compared with the spread (post-ReLU features often are).
    """
    n, dim = features.shape
    shift = np.asarray(features[0], dtype=np.float64)
    total = np.zeros(dim)
    scatter = np.zeros((dim, dim))
    for start in range(0, n, block_rows):
        block = np.asarray(features[start:start + block_rows], dtype=np.float64) - shift
        total += block.sum(axis=0)
        scatter += block.T @ block
    mean_shifted = total / n
    covariance = (scatter - n * np.outer(mean_shifted, mean_shifted)) / (n - 1)
    return mean_shifted + shift, covariance


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray,
                     eps: float = 1e-6) -> float:
    """d^2 = |mu1 - mu2|^2 + Tr(sigma1 + sigma2 - 2 sqrt(sigma1 sigma2)).

    sqrt(sigma1 sigma2) comes from scipy.linalg.sqrtm. When the product is singular (the root
    does not square back to it) or the root is non-finite, eps * I is added to both covariances
    first; small imaginary parts from round-off are dropped, large ones are an error.
    """
    mu1, mu2 = (np.atleast_1d(np.asarray(mu, np.float64)) for mu in (mu1, mu2))
    sigma1, sigma2 = (np.atleast_2d(np.asarray(sigma, np.float64)) for sigma in (sigma1, sigma2))
    dim = len(mu1)
    if mu2.shape != (dim,) or sigma1.shape != (dim, dim) or sigma2.shape != (dim, dim):
        raise ValueError(f"frechet_distance: shapes do not match: mu {mu1.shape} vs {mu2.shape}, "
                         f"sigma {sigma1.shape} vs {sigma2.shape}")
    diff = mu1 - mu2

    covmean = _sqrtm_checked(sigma1 @ sigma2)
    if covmean is None:
        offset = np.eye(dim) * eps
        covmean = _sqrtm_quiet((sigma1 + offset) @ (sigma2 + offset))
    if not np.isfinite(covmean).all():
        raise UserError("FID could not be computed: the matrix square root of the covariance "
                        "product is not finite even with an eps offset. The features are "
                        "degenerate (e.g. constant); use more samples (eval.num) or another "
                        "feature extractor.")
    if np.iscomplexobj(covmean):
        largest = np.max(np.abs(covmean.imag))
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=IMAGINARY_TOLERANCE):
            raise UserError(f"FID could not be computed reliably: the matrix square root has an "
                            f"imaginary component of {largest:.3g}, so the covariance estimates "
                            "are ill-conditioned. Use more samples (eval.num) or a "
                            "lower-dimensional feature extractor.")
        covmean = covmean.real
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(covmean))


def _sqrtm_checked(product: np.ndarray) -> np.ndarray | None:
    """sqrtm(product), or None when it is non-finite or does not square back to product."""
    root = _sqrtm_quiet(product)
    if not np.isfinite(root).all():
        return None
    scale = np.linalg.norm(product)
    if scale == 0.0:
        return None
    with np.errstate(all="ignore"):
        error = np.linalg.norm(root @ root - product) / scale
    return root if error <= SQRTM_TOLERANCE else None


def _sqrtm_quiet(matrix: np.ndarray) -> np.ndarray:
    # Singularity is detected and handled by the callers, so scipy's warning about it is noise.
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)
        return scipy.linalg.sqrtm(matrix)


def check_enough_samples(n: int, dim: int, which: str, extractor: str = "") -> None:
    """UserError when n samples cannot give a full-rank dim x dim covariance (needs n > dim)."""
    if n <= dim:
        using = f" (features={extractor})" if extractor else ""
        raise UserError(f"FID needs more samples than feature dimensions, but the {which} set has "
                        f"{n} samples for {dim}-dimensional features{using}, so its covariance is "
                        f"singular. Give more than {dim} samples (ganctl eval num=..., "
                        "train.eval_num=... during training; 10,000 or more is usual for a stable "
                        "FID) or use a lower-dimensional feature extractor (features=classifier "
                        "for mnist, fashion_mnist and cifar10).")


def fid(real_features: np.ndarray, fake_features: np.ndarray, extractor: str = "") -> float:
    """FID between two feature sets (rows are samples)."""
    real_features, fake_features = checks.feature_pair(real_features, fake_features, "FID")
    check_enough_samples(len(real_features), real_features.shape[1], "real", extractor)
    check_enough_samples(len(fake_features), fake_features.shape[1], "fake", extractor)
    mu_real, sigma_real = mean_and_covariance(real_features)
    mu_fake, sigma_fake = mean_and_covariance(fake_features)
    return frechet_distance(mu_real, sigma_real, mu_fake, sigma_fake)

