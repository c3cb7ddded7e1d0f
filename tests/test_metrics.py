"""Metrics against closed forms and independent numpy/scipy computations, plus their properties.

No TensorFlow here: the metrics are numpy, and evaluation is exercised with the pixel extractor.
Expected values are computed in the tests (closed forms or direct formulas), never hard-coded.
"""
from __future__ import annotations

import math
import re

import numpy as np
import pytest
import scipy.linalg
from scipy.spatial.distance import cdist

from ganctl.errors import UserError
from ganctl.evaluation import evaluate, load_image_set
from ganctl.metrics import fid, inception_score, kid, modes, precision_recall, registry
from ganctl.images import to_uint8
from ganctl.metrics.features import PixelExtractor


def rng(seed=0):
    return np.random.default_rng(seed)


def ring_modes(k=8, radius=1.0):
    angles = 2 * np.pi * np.arange(k) / k
    return radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)


# ---------------------------------------------------------------------------------------- FID


def test_frechet_distance_matches_closed_form_for_diagonal_covariances():
    r = rng()
    mu1, mu2 = r.normal(size=6), r.normal(size=6)
    var1, var2 = r.uniform(0.1, 3, size=6), r.uniform(0.1, 3, size=6)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(var1) - np.sqrt(var2)) ** 2)
    got = fid.frechet_distance(mu1, np.diag(var1), mu2, np.diag(var2))
    assert got == pytest.approx(expected, rel=1e-9)


def test_fid_of_gaussian_samples_approaches_the_closed_form():
    r = rng(1)
    n, dim = 40_000, 4
    mu1, mu2 = np.zeros(dim), np.array([1.0, -0.5, 0.0, 2.0])
    var1, var2 = np.array([1.0, 2.0, 0.5, 1.0]), np.array([0.25, 2.0, 2.0, 4.0])
    real = mu1 + np.sqrt(var1) * r.normal(size=(n, dim))
    fake = mu2 + np.sqrt(var2) * r.normal(size=(n, dim))
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(var1) - np.sqrt(var2)) ** 2)
    assert fid.fid(real, fake) == pytest.approx(expected, rel=0.02)


def test_frechet_distance_full_covariance_matches_direct_scipy():
    r = rng(2)
    dim = 24
    real = r.normal(size=(600, dim)) @ r.normal(size=(dim, dim))
    fake = r.normal(size=(500, dim)) @ r.normal(size=(dim, dim)) + 0.3
    mu1, sigma1 = real.mean(0), np.cov(real, rowvar=False)
    mu2, sigma2 = fake.mean(0), np.cov(fake, rowvar=False)
    direct = (np.sum((mu1 - mu2) ** 2) + np.trace(sigma1) + np.trace(sigma2)
              - 2 * np.trace(scipy.linalg.sqrtm(sigma1 @ sigma2)).real)
    # Tr sqrt(S1 S2) = Tr sqrt(S1^1/2 S2 S1^1/2), a symmetric PSD form: an independent check.
    root1 = scipy.linalg.sqrtm(sigma1).real
    eigen = np.linalg.eigvalsh(root1 @ sigma2 @ root1)
    symmetric = (np.sum((mu1 - mu2) ** 2) + np.trace(sigma1) + np.trace(sigma2)
                 - 2 * np.sum(np.sqrt(np.clip(eigen, 0, None))))
    assert fid.frechet_distance(mu1, sigma1, mu2, sigma2) == pytest.approx(direct, rel=1e-6)
    assert fid.fid(real, fake) == pytest.approx(direct, rel=1e-6)
    assert direct == pytest.approx(symmetric, rel=1e-6)


def test_mean_and_covariance_in_blocks_matches_numpy_even_far_from_zero():
    features = (rng(3).normal(size=(1001, 7)) + 1e4).astype(np.float32)
    expected = features.astype(np.float64)
    for block_rows in (1, 64, 5000):
        mean, covariance = fid.mean_and_covariance(features, block_rows)
        np.testing.assert_allclose(mean, expected.mean(0), rtol=1e-12)
        np.testing.assert_allclose(covariance, np.cov(expected, rowvar=False), rtol=1e-9, atol=1e-9)


def test_fid_of_a_set_with_itself_is_zero():
    features = rng(4).normal(size=(2000, 32)) @ rng(5).normal(size=(32, 32))
    assert abs(fid.fid(features, features)) < 1e-8 * np.trace(np.cov(features, rowvar=False))


def test_fid_survives_a_singular_covariance_product():
    # A constant feature (a dead ReLU unit) makes both covariances singular; it adds exactly 0,
    # with no eps * I offset to shift the other terms.
    r = rng(6)
    real, fake = r.normal(size=(3000, 5)), 1.5 * r.normal(size=(3000, 5)) + 0.2
    padded_real, padded_fake = (np.hstack([x, np.zeros((len(x), 1))]) for x in (real, fake))
    assert fid.fid(padded_real, padded_fake) == pytest.approx(fid.fid(real, fake), rel=1e-10)
    # Zero covariances (constant sets): the distance reduces to |mu1 - mu2|^2.
    zero = np.zeros((3, 3))
    mu1, mu2 = np.array([1.0, 2.0, 3.0]), np.array([0.0, 2.0, 5.0])
    assert fid.frechet_distance(mu1, zero, mu2, zero) == pytest.approx(5.0, rel=1e-12)


def trace_sqrt_by_cholesky(sigma1, sigma2):
    """Tr sqrt(sigma1 sigma2) as the sum of singular values of L2^T L1 (sigma = L L^T).

    (L2^T L1)^T (L2^T L1) = L1^T sigma2 L1 is similar to sigma1 sigma2, and Cholesky factors are
    as accurate as the scaling allows: an independent route to the same number.
    """
    lower1, lower2 = np.linalg.cholesky(sigma1), np.linalg.cholesky(sigma2)
    return np.linalg.svd(lower2.T @ lower1, compute_uv=False).sum()


def badly_scaled_features(seed=30, n=5000, dim=32):
    """Gaussian features whose column scales run from 1e-4 to 1e4, fakes shifted and wider."""
    r = rng(seed)
    scales = np.logspace(-4, 4, dim)
    return r.normal(size=(n, dim)) * scales, (1.1 * r.normal(size=(n, dim)) + 0.1) * scales


def test_fid_of_badly_scaled_features_is_computed_not_refused():
    real, fake = badly_scaled_features()
    mu1, sigma1 = real.mean(0), np.cov(real, rowvar=False)
    mu2, sigma2 = fake.mean(0), np.cov(fake, rowvar=False)
    outer = np.sum((mu1 - mu2) ** 2) + np.trace(sigma1) + np.trace(sigma2)
    by_cholesky = outer - 2 * trace_sqrt_by_cholesky(sigma1, sigma2)
    # torch-fidelity 0.4.0's fid_statistics_to_metric (and torchmetrics): real parts of the
    # complex sqrt of eigvals(sigma1 @ sigma2); round-off makes one eigenvalue slightly negative.
    eigenvalues = np.linalg.eigvals(sigma1 @ sigma2).astype(complex)
    by_eigvals = outer - 2 * np.sum(np.sqrt(eigenvalues).real)
    # scipy's sqrtm of the product as in pytorch-fid, its imaginary part dropped (pytorch-fid
    # itself refuses these features: "Imaginary component 0.139").
    by_sqrtm = outer - 2 * np.trace(scipy.linalg.sqrtm(sigma1 @ sigma2)).real
    assert fid.frechet_distance(mu1, sigma1, mu2, sigma2) == pytest.approx(by_cholesky, rel=1e-11)
    assert fid.fid(real, fake) == pytest.approx(by_cholesky, rel=1e-11)
    assert fid.fid(real, fake) == pytest.approx(by_eigvals, rel=1e-6)
    assert fid.fid(real, fake) == pytest.approx(by_sqrtm, rel=1e-6)


def test_frechet_distance_names_a_matrix_that_is_no_covariance():
    # The one input on which the Frechet distance is not defined from these statistics: the
    # error says which matrix and why, not "use more samples".
    mu = np.zeros(3)
    covariance = np.diag([1.0, 2.0, 3.0])
    indefinite = np.diag([1.0, -0.5, 3.0])
    with pytest.raises(ValueError, match=r"sigma2 is not positive semi-definite.*-0\.5"):
        fid.frechet_distance(mu, covariance, mu, indefinite)
    asymmetric = covariance + np.triu(np.ones((3, 3)), 1)
    with pytest.raises(ValueError, match=r"sigma1 is not symmetric"):
        fid.frechet_distance(mu, asymmetric, mu, covariance)


def test_fid_with_fewer_samples_than_dimensions_is_a_clear_error():
    features = rng(7).normal(size=(100, 128))
    with pytest.raises(UserError,
                       match=r"100 samples for 128-dimensional.*num=.*lower-dimensional"):
        fid.fid(features, features)


# ---------------------------------------------------------------------------------------- KID


def test_mmd2_unbiased_matches_the_double_sum_definition():
    r = rng(8)
    x, y = r.normal(size=(9, 3)), r.normal(size=(7, 3)) + 0.5

    def k(a, b):
        return (a @ b / 3 + 1) ** 3

    within_x = sum(k(x[i], x[j]) for i in range(9) for j in range(9) if i != j) / (9 * 8)
    within_y = sum(k(y[i], y[j]) for i in range(7) for j in range(7) if i != j) / (7 * 6)
    across = sum(k(a, b) for a in x for b in y) / (9 * 7)
    assert kid.mmd2_unbiased(x, y) == pytest.approx(within_x + within_y - 2 * across, rel=1e-10)


def test_kid_is_near_zero_for_one_distribution_and_positive_for_two():
    r = rng(9)
    real, same = r.normal(size=(2000, 16)), r.normal(size=(2000, 16))
    shifted = r.normal(size=(2000, 16)) + 0.5
    mean, std = kid.kid(real, same, num_subsets=20, subset_size=300, seed=0)
    assert abs(mean) < 3 * std
    mean_shifted, std_shifted = kid.kid(real, shifted, num_subsets=20, subset_size=300, seed=0)
    assert mean_shifted > 10 * std_shifted > 0
    assert mean_shifted > 10 * abs(mean)


def test_kid_estimator_is_unbiased_where_the_plain_estimate_is_not():
    # Many tiny independent sample pairs from one distribution: the unbiased MMD^2 averages to 0
    # within its standard error, while the V-statistic (diagonal kept) is clearly positive.
    r = rng(10)
    unbiased, biased = [], []
    for _ in range(400):
        x, y = r.normal(size=(10, 4)), r.normal(size=(10, 4))
        unbiased.append(kid.mmd2_unbiased(x, y))
        biased.append(kid.polynomial_kernel(x, x).mean() + kid.polynomial_kernel(y, y).mean()
                      - 2 * kid.polynomial_kernel(x, y).mean())
    standard_error = np.std(unbiased) / np.sqrt(len(unbiased))
    assert abs(np.mean(unbiased)) < 3 * standard_error
    assert np.mean(biased) > 10 * np.std(biased) / np.sqrt(len(biased))


def test_kid_is_seeded():
    r = rng(11)
    real, fake = r.normal(size=(300, 4)), r.normal(size=(300, 4))
    assert kid.kid(real, fake, 5, 100, seed=3) == kid.kid(real, fake, 5, 100, seed=3)
    assert kid.kid(real, fake, 5, 100, seed=3) != kid.kid(real, fake, 5, 100, seed=4)


# ------------------------------------------------------------------------------ non-finite input


FEATURE_METRICS = {
    "FID": lambda real, fake: fid.fid(real, fake),
    "KID": lambda real, fake: kid.kid(real, fake, num_subsets=3, subset_size=50),
    "Precision/recall": precision_recall.precision_recall,
    "Density/coverage": precision_recall.density_coverage,
}


@pytest.mark.parametrize("metric", FEATURE_METRICS)
@pytest.mark.parametrize("which", ["real", "fake"])
def test_non_finite_features_are_refused_naming_the_set_and_row_count(metric, which):
    r = rng(25)
    sets = {"real": r.normal(size=(120, 4)), "fake": r.normal(size=(100, 4))}
    sets[which][[7, 30]] = np.nan
    sets[which][30, 1] = np.inf      # a row with both counts once
    sets[which][55, 3] = -np.inf
    total = len(sets[which])
    with pytest.raises(UserError, match=rf"^{re.escape(metric)} cannot be computed: 3 of the "
                                        rf"{total} {which} feature rows hold NaN or Inf "
                                        r"\(first at row 7\)"):
        FEATURE_METRICS[metric](sets["real"], sets["fake"])


# ----------------------------------------------------------------------------------------- IS


def test_inception_score_of_confident_uniform_predictions_is_the_class_count():
    classes = 10
    probs = np.tile(np.eye(classes), (100, 1))     # every split holds each class equally often
    mean, std = inception_score.inception_score(probs, splits=10)
    assert mean == pytest.approx(classes, rel=1e-12)
    assert std == pytest.approx(0, abs=1e-12)


def test_inception_score_of_one_class_is_one():
    probs = np.zeros((500, 7))
    probs[:, 3] = 1.0
    assert inception_score.inception_score(probs, splits=5) == pytest.approx((1.0, 0.0))


def test_inception_score_matches_its_definition():
    probs = rng(12).dirichlet(np.ones(5) * 0.5, size=400)
    marginal = probs.mean(0)
    expected = np.exp(np.mean(np.sum(probs * (np.log(probs) - np.log(marginal)), axis=1)))
    assert inception_score.inception_score(probs, splits=1)[0] == pytest.approx(expected, rel=1e-10)


def test_inception_score_parts_follow_floor_of_i_n_over_splits():
    # N=5003 does not divide by 10: part i is rows floor(i N / 10) .. floor((i + 1) N / 10) in
    # Salimans et al.'s code and torch-fidelity (its sizes are 500 and 501 in a different order
    # from np.array_split's).
    n, splits = 5003, 10
    probs = rng(26).dirichlet(np.ones(10) * 0.3, size=n)
    scores = []
    for i in range(splits):
        part = probs[i * n // splits:(i + 1) * n // splits]
        marginal = part.mean(0)
        scores.append(np.exp(np.mean(np.sum(part * (np.log(part) - np.log(marginal)), axis=1))))
    mean, std = inception_score.inception_score(probs, splits)
    assert mean == pytest.approx(np.mean(scores), rel=1e-12)
    assert std == pytest.approx(np.std(scores), rel=1e-10)


def test_inception_score_refuses_rows_that_are_not_probabilities():
    probs = rng(27).dirichlet(np.ones(5), size=200)
    with pytest.raises(UserError, match=r"200 of the 200 rows do not sum to 1.*from 2 to 2"):
        inception_score.inception_score(2 * probs)
    logits = np.log(probs)
    with pytest.raises(UserError, match=r"200 of the 200 rows hold negative values.*logits"):
        inception_score.inception_score(logits)
    broken = probs.copy()
    broken[3, 0] = np.nan
    with pytest.raises(UserError, match=r"1 of the 200 fake probability rows hold NaN or Inf"):
        inception_score.inception_score(broken)
    # float32 softmax rounding is accepted
    assert inception_score.inception_score(probs.astype(np.float32))[0] == pytest.approx(
        inception_score.inception_score(probs)[0], rel=1e-5)


# --------------------------------------------------------------- precision/recall, density/coverage


def test_precision_and_recall_are_one_for_identical_sets_and_zero_for_far_apart_ones():
    features = rng(13).normal(size=(400, 8))
    assert precision_recall.precision_recall(features, features) == (1.0, 1.0)
    assert precision_recall.precision_recall(features, features + 100.0) == (0.0, 0.0)


def test_density_and_coverage_on_identical_same_distribution_and_disjoint_sets():
    k = 5
    r = rng(14)
    real, other = r.normal(size=(1500, 4)), r.normal(size=(1500, 4))
    # Identical sets: each real ball holds its own centre and k - 1 neighbours inside; the k-th
    # lies on the boundary, which is outside (Naeem et al.'s code, prdc), so density is exactly 1.
    for copies in (real, real.copy()):
        assert precision_recall.density_coverage(real, copies, k) == (1.0, 1.0)
    # Independent samples: density about 1, coverage about 1 - 1/2^k (Naeem et al. 2020).
    density, coverage = precision_recall.density_coverage(real, other, k)
    assert density == pytest.approx(1.0, abs=0.1)
    assert coverage == pytest.approx(1 - 0.5 ** k, abs=0.03)
    assert precision_recall.density_coverage(real, other + 100.0, k) == (0.0, 0.0)


def brute_force_prdc(real, fake, k_pr, k_dc):
    """The four metrics from full distance matrices (the unblocked reference); the boundary is
    inside for precision/recall and outside for density/coverage, as in each paper's code."""
    real_real, fake_fake, real_fake = cdist(real, real), cdist(fake, fake), cdist(real, fake)
    radii_real_pr = np.sort(real_real, axis=1)[:, k_pr]
    radii_fake_pr = np.sort(fake_fake, axis=1)[:, k_pr]
    radii_real_dc = np.sort(real_real, axis=1)[:, k_dc]
    precision = (real_fake <= radii_real_pr[:, None]).any(axis=0).mean()
    recall = (real_fake <= radii_fake_pr[None, :]).any(axis=1).mean()
    density = (real_fake < radii_real_dc[:, None]).sum() / (k_dc * len(fake))
    coverage = (real_fake.min(axis=1) < radii_real_dc).mean()
    return precision, recall, density, coverage, radii_real_pr


@pytest.mark.parametrize("block_rows", [1, 7, None])
def test_blocked_distances_give_the_unblocked_results(block_rows):
    r = rng(15)
    real = r.normal(size=(230, 5))
    fake = 1.3 * r.normal(size=(170, 5)) + 0.4
    precision, recall, density, coverage, radii = brute_force_prdc(real, fake, 3, 5)
    assert precision_recall.precision_recall(real, fake, 3, block_rows) == pytest.approx(
        (precision, recall))
    assert precision_recall.density_coverage(real, fake, 5, block_rows) == pytest.approx(
        (density, coverage))
    np.testing.assert_allclose(np.sqrt(precision_recall.knn_radii(real, 3, block_rows)), radii,
                               rtol=1e-9)
    blocks = list(precision_recall.squared_distance_blocks(real, fake, block_rows))
    np.testing.assert_allclose(np.vstack([b.squared for b in blocks]), cdist(real, fake) ** 2,
                               rtol=1e-9, atol=1e-9)


def test_a_point_on_a_ball_boundary_is_inside_for_precision_and_outside_for_density():
    # 1-D points with exact distances and k=1: real 0's ball reaches real 1 (radius 1); the fake
    # at -1 lies exactly on that boundary and outside every other ball.
    real = np.array([[0.0], [1.0], [3.0], [7.0]])
    fake = np.array([[-1.0], [20.0]])
    precision, _ = precision_recall.precision_recall(real, fake, k=1)
    density, coverage = precision_recall.density_coverage(real, fake, k=1)
    assert precision == 0.5                      # <=, Kynkaanniemi et al.
    assert density == 0.0 and coverage == 0.0    # <, Naeem et al.


@pytest.mark.parametrize("offset", [1e6, 1e8])
def test_a_large_offset_changes_no_manifold_metric(offset):
    """Features far from the origin (every value + offset) keep every comparison that exact
    distances make: the shortcut alone flips some at 1e6."""
    r = rng(23)
    real = r.normal(size=(500, 8))
    fake = 1.2 * r.normal(size=(400, 8)) + 0.3
    shifted_real, shifted_fake = real + offset, fake + offset
    exact = brute_force_prdc(shifted_real, shifted_fake, 3, 5)[:4]
    assert exact == brute_force_prdc(real, fake, 3, 5)[:4]
    got = (precision_recall.precision_recall(shifted_real, shifted_fake, 3)
           + precision_recall.density_coverage(shifted_real, shifted_fake, 5))
    assert got == exact
    np.testing.assert_allclose(precision_recall.knn_radii(shifted_real, 3),
                               brute_force_prdc(shifted_real, shifted_fake, 3, 5)[4] ** 2,
                               rtol=1e-9)


def test_exact_copies_and_ties_are_decided_on_exact_distances():
    # Half the fakes copy reals, so many real-fake distances equal a real radius exactly; the
    # blocked shortcut must make the same decisions as full exact distance matrices.
    r = rng(24)
    real = r.normal(size=(300, 6)) + 50.0
    fake = np.vstack([real[::2], r.normal(size=(150, 6)) + 50.0])
    exact = brute_force_prdc(real, fake, 3, 5)[:4]
    for block_rows in (1, 13, None):
        got = (precision_recall.precision_recall(real, fake, 3, block_rows)
               + precision_recall.density_coverage(real, fake, 5, block_rows))
        assert got == exact


def test_block_size_follows_the_memory_budget():
    rows = precision_recall.block_rows_for(50_000)
    assert rows * 50_000 * 8 <= precision_recall.BLOCK_BYTES
    assert rows >= 1 and precision_recall.block_rows_for(10**12) == 1


# ------------------------------------------------------------------------------------- modes


def test_ring_samples_from_every_mode_cover_all_modes():
    std, centres = 0.01, ring_modes()
    r = rng(16)
    points = centres[r.integers(0, 8, size=8000)] + std * r.normal(size=(8000, 2))
    result = modes.mixture_modes(points, centres, std)
    assert result["modes_covered"] == 8 and result["modes_total"] == 8
    # Within 3 std of a 2-D isotropic Gaussian: P(chi2_2 <= 9) = 1 - exp(-9/2).
    assert result["high_quality"] == pytest.approx(1 - math.exp(-4.5), abs=0.005)
    assert result["kl"] < 0.01


def test_collapsed_generator_covers_one_mode():
    std, centres = 0.01, ring_modes()
    points = centres[2] + std * rng(17).normal(size=(1000, 2))
    result = modes.mixture_modes(points, centres, std)
    assert result["modes_covered"] == 1
    assert result["kl"] == pytest.approx(math.log(8), rel=1e-3)


def test_far_off_points_are_not_high_quality():
    result = modes.mixture_modes(rng(18).normal(size=(500, 2)) + 50.0, ring_modes(), 0.01)
    assert result["high_quality"] == 0.0 and result["modes_covered"] == 0


def test_a_mode_needs_its_minimum_share_of_samples_to_count():
    std, centres = 0.05, ring_modes()
    n = 8000
    min_count = math.ceil(0.01 * n / 8)      # the documented rule: 1% of the expected count
    for extra, covered in ((min_count - 1, 7), (min_count, 8)):
        labels = np.r_[np.arange(n - extra) % 7, np.full(extra, 7)]
        result = modes.mixture_modes(centres[labels], centres, std, min_share=0.01)
        assert result["modes_covered"] == covered


def test_grid_modes_and_std_scale():
    axis = np.array([-4.0, -2.0, 0.0, 2.0, 4.0])
    centres = np.stack(np.meshgrid(axis, axis), -1).reshape(-1, 2)
    points = centres[np.arange(2500) % 25] + 0.05 * rng(19).normal(size=(2500, 2))
    assert modes.mixture_modes(points, centres, 0.05)["modes_covered"] == 25
    # The same points judged against a 10x tighter std are mostly not high quality.
    assert modes.mixture_modes(points, centres, 0.005)["high_quality"] < 0.05


def test_stacked_mnist_all_thousand_combinations():
    digits = np.array([(a, b, c) for a in range(10) for b in range(10) for c in range(10)])
    result = modes.stacked_mnist_modes(np.repeat(digits, 3, axis=0))
    assert result["modes_covered"] == 1000 and result["modes_total"] == 1000
    assert result["kl"] == pytest.approx(0.0, abs=1e-12)
    # 3,000 samples from 1,000 modes: sampling alone gives a kl of about 999 / 6,000.
    assert result["kl_floor"] == pytest.approx(999 / 6000, rel=0.1)
    collapsed = modes.stacked_mnist_modes(np.tile([[1, 2, 3]], (50, 1)))
    assert collapsed["modes_covered"] == 1
    assert collapsed["kl"] == pytest.approx(math.log(1000))


# ----------------------------------------------------------------------------------- registry


def test_unknown_metric_lists_the_known_ones():
    known = r"fid, kid, precision_recall, density_coverage, is, modes"
    with pytest.raises(UserError, match=rf"'fdi'.*{known}"):
        registry.compute_metrics(["fdi"], registry.MetricContext())


def test_every_metric_returns_flat_floats():
    r = rng(20)
    centres = ring_modes()
    points = centres[r.integers(0, 8, 600)] + 0.01 * r.normal(size=(600, 2))
    context = registry.MetricContext(
        real_features=r.normal(size=(600, 6)), fake_features=r.normal(size=(600, 6)),
        fake_probs=r.dirichlet(np.ones(10), 600), fake_points=points, mode_centres=centres,
        mode_std=0.01, kid_subsets=5, kid_subset_size=200)
    # Metrics of class-conditional samples (cas, class_match) are covered in tests/test_cas.py.
    unconditional = [name for name, metric in registry.METRICS.items() if not metric.needs_classes]
    results = registry.compute_metrics(unconditional, context)
    assert set(results) == {"fid", "kid", "kid_std", "precision", "recall", "density", "coverage",
                            "is", "is_std", "modes_covered", "modes_total", "high_quality", "kl",
                            "kl_floor"}
    assert all(isinstance(value, float) for value in results.values())


def test_missing_inputs_say_how_to_get_them():
    with pytest.raises(UserError, match=r"'is'.*'pixels'.*features=classifier"):
        registry.compute_metrics(["is"], registry.MetricContext(fake_features=np.zeros((5, 2)),
                                                                extractor="pixels"))
    with pytest.raises(UserError, match=r"'modes'.*ring or grid"):
        registry.compute_metrics(["modes"], registry.MetricContext(fake_features=np.zeros((5, 2))))


def test_registering_a_name_twice_is_refused():
    with pytest.raises(ValueError, match="twice"):
        registry.register_metric("fid")(lambda context: {})


# --------------------------------------------------------------------------- evaluate + loading


def blobs(n, seed, size=8, channels=1):
    """uint8 images of a bright square at a random place: a simple image distribution."""
    r = rng(seed)
    images = r.integers(0, 40, size=(n, size, size, channels), dtype=np.uint8)
    for image, (y, x) in zip(images, r.integers(0, size - 4, size=(n, 2)), strict=True):
        image[y:y + 4, x:x + 4] = 255
    return images


def test_evaluate_images_with_pixel_features_and_provenance():
    real, fake = blobs(400, 0), blobs(300, 1)
    result = evaluate(fake, real, ["fid", "kid", "precision_recall"], PixelExtractor(),
                      kid_subsets=5, kid_subset_size=100)
    assert result["num_fake"] == 300 and result["num_real"] == 400
    assert result["features"]["name"] == "pixels" and result["features"]["dim"] == 64
    assert set(result["metrics"]) == {"fid", "kid", "kid_std", "precision", "recall"}
    same = evaluate(real, real, ["fid", "precision_recall"], PixelExtractor())
    assert same["metrics"]["fid"] == pytest.approx(0, abs=1e-8)
    assert same["metrics"]["precision"] == same["metrics"]["recall"] == 1.0
    noise = rng(2).integers(0, 256, size=(300, 8, 8, 1), dtype=np.uint8)
    worse = evaluate(noise, real, ["fid"], PixelExtractor())
    assert worse["metrics"]["fid"] > result["metrics"]["fid"]


def test_evaluate_points_on_a_ring():
    centres, r = ring_modes(), rng(21)
    real = centres[r.integers(0, 8, 800)] + 0.01 * r.normal(size=(800, 2))
    collapsed = centres[0] + 0.01 * r.normal(size=(800, 2))
    result = evaluate(collapsed, real, ["modes", "precision_recall"], PixelExtractor(),
                      modes=centres, mode_std=0.01)
    assert result["metrics"]["modes_covered"] == 1
    assert result["metrics"]["recall"] < 0.3
    assert result["metrics"]["precision"] > 0.9
    # modes alone needs no real set
    assert evaluate(collapsed, None, ["modes"], PixelExtractor(), modes=centres,
                    mode_std=0.01)["num_real"] == 0


def test_evaluate_rejects_bad_inputs():
    real = blobs(50, 0)
    with pytest.raises(UserError, match=r"fake are images of size 12x12x1, real are .* 8x8x1"):
        evaluate(blobs(50, 1, size=12), real, ["fid"], PixelExtractor())
    with pytest.raises(UserError, match=r"dtype float32.*uint8"):
        evaluate(real.astype(np.float32), real, ["fid"], PixelExtractor())
    with pytest.raises(UserError, match=r"fid compare with real data.*real="):
        evaluate(real, None, ["fid"], PixelExtractor())
    with pytest.raises(UserError, match=r"'is' cannot be computed.*'pixels'"):
        evaluate(real, None, ["is"], PixelExtractor())


def test_pixel_features_stream_in_batches_and_pass_points_through():
    images = blobs(103, 3, size=28, channels=3)
    whole = PixelExtractor().extract(images, batch_size=1000).features
    streamed = PixelExtractor().extract(iter([images[:50], images[50:]]), batch_size=16).features
    assert whole.shape == (103, 14 * 14 * 3)
    np.testing.assert_array_equal(whole, streamed)
    points = rng(4).normal(size=(10, 2))
    np.testing.assert_array_equal(PixelExtractor().extract(points).features, points)


def test_to_uint8_maps_the_generator_range():
    np.testing.assert_array_equal(to_uint8(np.array([-1.0, 0.0, 1.0, 1.5])), [0, 128, 255, 255])


def test_load_image_set_from_npz_npy_and_folders(tmp_path):
    from PIL import Image

    images = blobs(6, 5, size=10)
    np.savez(tmp_path / "samples.npz", labels=np.arange(6), images=images[..., 0])
    np.testing.assert_array_equal(load_image_set(tmp_path / "samples.npz"), images)
    np.savez(tmp_path / "unnamed.npz", images)
    assert load_image_set(tmp_path / "unnamed.npz", limit=4).shape == (4, 10, 10, 1)
    np.save(tmp_path / "points.npy", np.ones((5, 2), np.float32))
    assert load_image_set(tmp_path / "points.npy").dtype == np.float64

    folder = tmp_path / "pngs"
    (folder / "sub").mkdir(parents=True)
    for i, image in enumerate(images):
        Image.fromarray(image[..., 0]).save(folder / ("sub" if i % 2 else "") / f"{i}.png")
    loaded = load_image_set(folder)
    assert loaded.shape == (6, 10, 10, 1) and loaded.dtype == np.uint8


def test_load_image_set_errors(tmp_path):
    from PIL import Image

    with pytest.raises(UserError, match=r"nope\.npz does not exist"):
        load_image_set(tmp_path / "nope.npz")
    np.savez(tmp_path / "floats.npz", images=np.zeros((3, 8, 8), np.float32))
    with pytest.raises(UserError, match=r"dtype float32 and shape \(3, 8, 8\)"):
        load_image_set(tmp_path / "floats.npz")
    np.savez(tmp_path / "rgba.npz", images=np.zeros((3, 8, 8, 4), np.uint8))
    with pytest.raises(UserError, match=r"C = 1 \(grayscale\) or 3"):
        load_image_set(tmp_path / "rgba.npz")
    (tmp_path / "mixed").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "mixed" / "a.png")
    Image.new("RGB", (9, 8)).save(tmp_path / "mixed" / "b.png")
    with pytest.raises(UserError, match=r"differ in size.*8x8.*9x8"):
        load_image_set(tmp_path / "mixed")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="holds no images"):
        load_image_set(tmp_path / "empty")
    (tmp_path / "broken.npz").write_bytes(b"not a zip")
    with pytest.raises(UserError, match="cannot be read"):
        load_image_set(tmp_path / "broken.npz")


def test_too_few_samples_are_user_errors():
    few = rng(22).normal(size=(3, 2))
    with pytest.raises(UserError, match=r"k=3 need more than 3 samples.*num="):
        precision_recall.precision_recall(few, few)
    with pytest.raises(UserError, match=r"10 splits.*only 3 samples"):
        inception_score.inception_score(np.full((3, 4), 0.25))
    with pytest.raises(UserError, match=r"at least 2 samples"):
        kid.kid(few[:1], few)


@pytest.mark.parametrize("num_samples", [2000, 10000, 26000])
def test_kl_floor_is_what_uniform_samples_score(num_samples):
    """A generator drawing the 1,000 Stacked MNIST modes exactly uniformly scores about the floor
    (not 0), and the floor falls with the samples as (K - 1) / 2N."""
    digits = rng(21).integers(0, 10, size=(num_samples, 3))
    result = modes.stacked_mnist_modes(digits)
    assert result["kl"] == pytest.approx(result["kl_floor"], rel=0.15)
    assert result["kl_floor"] == pytest.approx(999 / (2 * num_samples), rel=0.15)
