"""Frechet Inception Distance (Heusel et al. 2017): the Frechet distance of two Gaussian fits.

Pure numpy in float64. The feature matrices may be float32 and large (50,000 x 2048); the
mean and covariance are accumulated in row blocks so no float64 copy of a whole set is made.
"""
from __future__ import annotations

import numpy as np

from ganctl.errors import UserError
from ganctl.metrics import checks

# A covariance eigenvalue below -PSD_TOLERANCE times the largest (or an asymmetry above it) is
# not round-off, which is about dim * 1e-16 of the largest: the matrix is no covariance.
PSD_TOLERANCE = 1e-9


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


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray,
                     sigma2: np.ndarray) -> float:
    """d^2 = |mu1 - mu2|^2 + Tr(sigma1 + sigma2) - 2 Tr sqrt(sigma1 sigma2).

    Tr sqrt(sigma1 sigma2) is the sum of the singular values of sigma2^1/2 sigma1^1/2 (their
    squares are the eigenvalues of sigma1 sigma2), with the symmetric roots taken from each
    covariance's eigenvectors. Unlike scipy's sqrtm of the non-symmetric product (pytorch-fid,
    clean-fid) this has no imaginary parts to judge and needs no eps * I offset for singular
    covariances (a dead feature adds exactly 0), and unlike eigvals of the product (torch-fidelity)
    each singular value is accurate to 1e-16 of the largest rather than its square: on features
    whose scales span 1e-4 to 1e4 it agrees with a Cholesky-based computation to 1e-12, where
    those two agree with it to only 1e-6 (tests/test_metrics.py).
    """
    mu1, mu2 = (np.atleast_1d(np.asarray(mu, np.float64)) for mu in (mu1, mu2))
    sigma1, sigma2 = (np.atleast_2d(np.asarray(sigma, np.float64)) for sigma in (sigma1, sigma2))
    dim = len(mu1)
    if mu2.shape != (dim,) or sigma1.shape != (dim, dim) or sigma2.shape != (dim, dim):
        raise ValueError(f"frechet_distance: shapes do not match: mu {mu1.shape} vs {mu2.shape}, "
                         f"sigma {sigma1.shape} vs {sigma2.shape}")
    diff = mu1 - mu2
    product_of_roots = _psd_sqrt(sigma2, "sigma2") @ _psd_sqrt(sigma1, "sigma1")
    trace_sqrt = np.linalg.svd(product_of_roots, compute_uv=False).sum()
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * trace_sqrt)


def _psd_sqrt(sigma: np.ndarray, name: str) -> np.ndarray:
    """The symmetric square root of a positive semi-definite matrix, from its eigenvectors."""
    scale = np.abs(sigma).max(initial=0.0)
    if not np.allclose(sigma, sigma.T, rtol=0.0, atol=PSD_TOLERANCE * scale):
        raise ValueError(f"frechet_distance: {name} is not symmetric (largest |{name} - "
                         f"{name}.T| is {np.abs(sigma - sigma.T).max():.3g}); pass covariance "
                         "matrices, e.g. np.cov(features, rowvar=False).")
    eigenvalues, eigenvectors = np.linalg.eigh((sigma + sigma.T) / 2)
    eigenvalues = _clip_round_off(eigenvalues, name)
    return (eigenvectors * np.sqrt(eigenvalues)) @ eigenvectors.T


def _clip_round_off(eigenvalues: np.ndarray, name: str) -> np.ndarray:
    """Eigenvalues with round-off below 0 set to 0; a ValueError if one is clearly negative."""
    largest = np.abs(eigenvalues).max(initial=0.0)
    if eigenvalues.min(initial=0.0) < -PSD_TOLERANCE * largest:
        raise ValueError(f"frechet_distance: {name} is not positive semi-definite: it has the "
                         f"eigenvalue {eigenvalues.min():.3g} while the largest is {largest:.3g}. "
                         "Covariance matrices (np.cov of finite features) are accepted.")
    return np.clip(eigenvalues, 0.0, None)


def check_enough_samples(n: int, dim: int, which: str, extractor: str = "") -> None:
    """UserError when n samples cannot give a full-rank dim x dim covariance (needs n > dim)."""
    if n <= dim:
        using = f" (features={extractor})" if extractor else ""
        raise UserError(f"FID needs more samples than feature dimensions, but the {which} set has "
                        f"{n} samples for {dim}-dimensional features{using}, so its covariance is "
                        f"singular. Give more than {dim} samples (ganctl eval num=..., "
                        "train.eval_num=... during training; 10,000 or more is usual for a stable "
                        "FID), use a lower-dimensional feature extractor (features=classifier "
                        "for mnist, fashion_mnist and cifar10), or leave FID out: "
                        "metrics=[kid,precision_recall,density_coverage] work with few samples.")


def fid(real_features: np.ndarray, fake_features: np.ndarray, extractor: str = "") -> float:
    """FID between two feature sets (rows are samples)."""
    real_features, fake_features = checks.feature_pair(real_features, fake_features, "FID")
    check_enough_samples(len(real_features), real_features.shape[1], "real", extractor)
    check_enough_samples(len(fake_features), fake_features.shape[1], "fake", extractor)
    mu_real, sigma_real = mean_and_covariance(real_features)
    mu_fake, sigma_fake = mean_and_covariance(fake_features)
    for which, sigma, features in (("real", sigma_real, real_features),
                                   ("fake", sigma_fake, fake_features)):
        if not np.isfinite(sigma).all():
            raise UserError(f"FID cannot be computed: the covariance of the {which} features "
                            "overflows float64 (their largest magnitude is "
                            f"{np.abs(features).max():.3g}). Features up to about 1e150 are "
                            "accepted; rescale them.")
    return frechet_distance(mu_real, sigma_real, mu_fake, sigma_fake)
