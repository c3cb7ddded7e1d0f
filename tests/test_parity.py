"""ganctl's metrics against the reference implementations users trust, on seeded random features.

- prdc (Naeem et al.'s own package, in the dev extras): precision, recall, density, coverage.
- Faithful numpy transcriptions, each citing its source, of the FID, KID and IS formulas of
  pytorch-fid and torch-fidelity, so CI compares them on every run.
- The packages themselves: pytorch-fid, clean-fid and torch-fidelity. They import torch at module
  level (for their feature extractors), far too heavy for the dev install, but their metric
  functions are numpy: `make parity` installs the three with --no-deps (about 130 kB) and each
  function is compiled from the package's own installed source. Where torch is importable the
  modules are imported normally and torch-fidelity's tensor entry points are compared too.
  Without the packages these tests skip.

Deterministic metrics must agree to 1e-6 relative; subset KID with other random subsets within one
standard deviation of the subset estimates.
"""
from __future__ import annotations

import ast
import importlib
import importlib.util
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
from scipy.special import log_softmax, softmax

from ganctl.metrics import fid, inception_score, kid, precision_recall

RELATIVE = 1e-6
NOT_INSTALLED = "{} is not installed: `make parity` installs the reference packages"


def features(seed, n_real=600, n_fake=500, dim=16):
    """Real N(0, C) and fake features with another mean and covariance (float64)."""
    r = np.random.default_rng(seed)
    mixing = np.eye(dim) + 0.3 * r.normal(size=(dim, dim))
    real = r.normal(size=(n_real, dim)) @ mixing
    fake = (1.2 * r.normal(size=(n_fake, dim)) + 0.3) @ mixing
    return real, fake


def statistics(x):
    """(mean, covariance) as pytorch-fid, clean-fid and torch-fidelity compute them."""
    return np.mean(x, axis=0), np.cov(x, rowvar=False)


def logits(seed, n=5003, classes=10):
    return 3.0 * np.random.default_rng(seed).normal(size=(n, classes))


# -------------------------------------------------------------------------------- prdc


@pytest.mark.parametrize("k", [3, 5])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("seed", [0, 1])
def test_precision_recall_density_coverage_match_prdc(k, dtype, seed):
    prdc = pytest.importorskip("prdc", reason="prdc is in the dev extras: pip install -e '.[dev]'")
    real, fake = (x.astype(dtype) for x in features(seed))
    reference = prdc.compute_prdc(real, fake, nearest_k=k)
    precision, recall = precision_recall.precision_recall(real, fake, k)
    density, coverage = precision_recall.density_coverage(real, fake, k)
    assert precision == pytest.approx(reference["precision"], rel=RELATIVE)
    assert recall == pytest.approx(reference["recall"], rel=RELATIVE)
    assert density == pytest.approx(reference["density"], rel=RELATIVE)
    assert coverage == pytest.approx(reference["coverage"], rel=RELATIVE)


# ------------------------------------------------------------------ numpy transcriptions


def pytorch_fid_calculate_frechet_distance(mu1, sigma1, mu2, sigma2, eps=1e-6):
    """pytorch-fid 0.3.0, pytorch_fid/fid_score.py: calculate_frechet_distance (its asserts and
    print left out). clean-fid 0.1.35's cleanfid/fid.py: frechet_distance is the same code."""
    mu1, mu2 = np.atleast_1d(mu1), np.atleast_1d(mu2)
    sigma1, sigma2 = np.atleast_2d(sigma1), np.atleast_2d(sigma2)
    diff = mu1 - mu2
    covmean, _ = scipy.linalg.sqrtm(sigma1.dot(sigma2), disp=False)
    if not np.isfinite(covmean).all():
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = scipy.linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(f"Imaginary component {np.max(np.abs(covmean.imag))}")
        covmean = covmean.real
    return diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean)


def torch_fidelity_fid(mu1, sigma1, mu2, sigma2):
    """torch-fidelity 0.4.0, torch_fidelity/metric_fid.py: fid_statistics_to_metric."""
    diff = mu1 - mu2
    tr_covmean = np.sum(np.sqrt(np.linalg.eigvals(sigma1.dot(sigma2)).astype("complex128")).real)
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * tr_covmean)


def torch_fidelity_mmd2_unbiased(x, y):
    """torch-fidelity 0.4.0, torch_fidelity/metric_kid.py: kernel_poly with its defaults (degree
    3, gamma 1/d, coef0 1) and mmd2(..., mmd_est="unbiased"), adapted there from Binkowski et
    al.'s MMD-GAN gan/compute_scores.py."""
    def kernel(a, b):
        return (np.matmul(a, b.T) / a.shape[1] + 1) ** 3

    k_xx, k_xy, k_yy = kernel(x, x), kernel(x, y), kernel(y, y)
    m = k_xx.shape[0]
    kt_xx_sum = (k_xx.sum(axis=1) - np.diagonal(k_xx)).sum()
    kt_yy_sum = (k_yy.sum(axis=1) - np.diagonal(k_yy)).sum()
    return (kt_xx_sum + kt_yy_sum) / (m * (m - 1)) - 2 * k_xy.sum() / (m * m)


def torch_fidelity_kid_subsets(real, fake, num_subsets, subset_size, seed):
    """The subsets torch-fidelity's kid_features_to_metric draws (np.random.RandomState)."""
    rng = np.random.RandomState(seed)
    for _ in range(num_subsets):
        yield (real[rng.choice(len(real), subset_size, replace=False)],
               fake[rng.choice(len(fake), subset_size, replace=False)])


def torch_fidelity_inception_score(logits, splits=10):
    """torch-fidelity 0.4.0, torch_fidelity/metric_isc.py: isc_features_to_metric with
    shuffle=False, on logits (it takes the softmax itself), in numpy."""
    n = len(logits)
    p, log_p = softmax(logits, axis=1), log_softmax(logits, axis=1)
    scores = []
    for i in range(splits):
        p_chunk, log_p_chunk = p[i * n // splits:(i + 1) * n // splits], \
            log_p[i * n // splits:(i + 1) * n // splits]
        q_chunk = p_chunk.mean(axis=0, keepdims=True)
        scores.append(np.exp((p_chunk * (log_p_chunk - np.log(q_chunk))).sum(axis=1).mean()))
    return float(np.mean(scores)), float(np.std(scores))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fid_matches_the_pytorch_fid_and_torch_fidelity_formulas(seed):
    real, fake = features(seed, n_real=3000, n_fake=2500, dim=64)
    got = fid.fid(real, fake)
    assert got == pytest.approx(
        pytorch_fid_calculate_frechet_distance(*statistics(real), *statistics(fake)), rel=RELATIVE)
    assert got == pytest.approx(torch_fidelity_fid(*statistics(real), *statistics(fake)),
                                rel=RELATIVE)


def test_kid_matches_torch_fidelity_on_its_subsets_and_within_one_std_on_ours():
    real, fake = features(3, n_real=800, n_fake=800, dim=32)
    subsets, size, seed = 30, 200, 7
    reference = np.array([torch_fidelity_mmd2_unbiased(x, y) for x, y in
                          torch_fidelity_kid_subsets(real, fake, subsets, size, seed)])
    ours_on_theirs = np.array([kid.mmd2_unbiased(x, y) for x, y in
                               torch_fidelity_kid_subsets(real, fake, subsets, size, seed)])
    np.testing.assert_allclose(ours_on_theirs, reference, rtol=1e-10)
    mean, std = kid.kid(real, fake, subsets, size, seed)
    assert abs(mean - reference.mean()) <= std
    assert std == pytest.approx(reference.std(), rel=0.5)


@pytest.mark.parametrize("n", [5000, 5003, 997])
def test_inception_score_matches_torch_fidelity(n):
    scores = logits(4, n=n)
    mean, std = inception_score.inception_score(softmax(scores, axis=1), splits=10)
    reference_mean, reference_std = torch_fidelity_inception_score(scores, splits=10)
    assert mean == pytest.approx(reference_mean, rel=RELATIVE)
    assert std == pytest.approx(reference_std, rel=RELATIVE)


# ------------------------------------------------------------ the packages themselves


def packaged_functions(package: str, module: str, names: list[str], **helpers):
    """The named functions of an installed reference package's module, from its own code.

    Imported when the module imports (torch present); otherwise each function's definition is
    taken from the installed source file and compiled alone, with numpy, scipy.linalg and the
    given stand-ins for the package's print helpers as its globals.
    """
    spec = importlib.util.find_spec(package)
    if spec is None:
        pytest.skip(NOT_INSTALLED.format(package))
    try:
        imported = importlib.import_module(f"{package}.{module}")
        return [getattr(imported, name) for name in names]
    except ImportError:
        pass     # torch (or torchvision) is missing: read the numpy functions from the source
    path = Path(spec.submodule_search_locations[0]) / f"{module}.py"
    tree = ast.parse(path.read_text(), str(path))
    chosen = [node for node in tree.body
              if isinstance(node, ast.FunctionDef) and node.name in names]
    assert sorted(node.name for node in chosen) == sorted(names), f"not all of {names} in {path}"
    namespace = {"np": np, "linalg": scipy.linalg, **helpers}
    exec(compile(ast.Module(body=chosen, type_ignores=[]), str(path), "exec"), namespace)
    return [namespace[name] for name in names]


def _quiet(*args, **kwargs):
    """Stand-in for torch-fidelity's vprint: the comparisons need no progress output."""


def _check(condition, message):
    """Stand-in for torch-fidelity's vassert."""
    assert condition, message


def _kwarg(name, kwargs):
    """Stand-in for torch-fidelity's get_kwarg: the tests pass every setting explicitly."""
    return kwargs[name]


def test_fid_matches_pytorch_fid_package():
    (calculate_frechet_distance,) = packaged_functions("pytorch_fid", "fid_score",
                                                       ["calculate_frechet_distance"])
    real, fake = features(5, n_real=3000, n_fake=2500, dim=64)
    reference = calculate_frechet_distance(*statistics(real), *statistics(fake))
    assert fid.fid(real, fake) == pytest.approx(reference, rel=RELATIVE)


def test_fid_and_kid_match_clean_fid_package():
    frechet_distance, kernel_distance = packaged_functions(
        "cleanfid", "fid", ["frechet_distance", "kernel_distance"])
    real, fake = features(6, n_real=3000, n_fake=2500, dim=64)
    reference = frechet_distance(*statistics(real), *statistics(fake))
    assert fid.fid(real, fake) == pytest.approx(reference, rel=RELATIVE)
    # clean-fid draws its subsets from the global np.random state: other subsets than ganctl's,
    # so the means agree within the subset estimates' standard deviation.
    np.random.seed(0)
    reference_kid = kernel_distance(real, fake, num_subsets=30, max_subset_size=300)
    mean, std = kid.kid(real, fake, 30, 300, seed=0)
    assert abs(mean - reference_kid) <= std


def test_fid_and_kid_match_torch_fidelity_package():
    (fid_statistics_to_metric,) = packaged_functions(
        "torch_fidelity", "metric_fid", ["fid_statistics_to_metric"], vprint=_quiet,
        KEY_METRIC_FID="frechet_inception_distance")
    kernel_poly, mmd2 = packaged_functions("torch_fidelity", "metric_kid", ["kernel_poly", "mmd2"],
                                           vassert=_check, get_kwarg=_kwarg)
    real, fake = features(7, n_real=3000, n_fake=2500, dim=64)
    reference = fid_statistics_to_metric(dict(zip(("mu", "sigma"), statistics(real))),
                                         dict(zip(("mu", "sigma"), statistics(fake))),
                                         False)["frechet_inception_distance"]
    assert fid.fid(real, fake) == pytest.approx(reference, rel=RELATIVE)
    # On the subsets torch-fidelity draws, its MMD^2 and ganctl's are the same numbers.
    pairs = list(torch_fidelity_kid_subsets(real, fake, 20, 300, seed=7))
    kernel = {"kid_kernel_poly_degree": 3, "kid_kernel_poly_gamma": None,
              "kid_kernel_poly_coef0": 1}        # torch-fidelity's defaults (defaults.py)
    reference_mmd = np.array([mmd2(kernel_poly(x, x, **kernel), kernel_poly(x, y, **kernel),
                                   kernel_poly(y, y, **kernel)) for x, y in pairs])
    np.testing.assert_allclose([kid.mmd2_unbiased(x, y) for x, y in pairs], reference_mmd,
                               rtol=RELATIVE)


def test_kid_and_is_match_torch_fidelity_tensor_entry_points():
    torch = pytest.importorskip("torch", reason="torch-fidelity's entry points take torch tensors")
    try:
        from torch_fidelity import metric_isc, metric_kid
    except ImportError:
        pytest.skip(NOT_INSTALLED.format("torch_fidelity (with torchvision)"))
    real, fake = features(8, n_real=1500, n_fake=1500, dim=32)
    subsets, size, seed = 30, 300, 7
    reference_kid = metric_kid.kid_features_to_metric(
        torch.from_numpy(real), torch.from_numpy(fake), kid_subsets=subsets,
        kid_subset_size=size, rng_seed=seed, verbose=False)["kernel_inception_distance_mean"]
    ours_on_theirs = np.mean([kid.mmd2_unbiased(x, y) for x, y in
                              torch_fidelity_kid_subsets(real, fake, subsets, size, seed)])
    assert ours_on_theirs == pytest.approx(reference_kid, rel=RELATIVE)
    mean, std = kid.kid(real, fake, subsets, size, seed)
    assert abs(mean - reference_kid) <= std

    scores = logits(9)
    reference_is = metric_isc.isc_features_to_metric(torch.from_numpy(scores), splits=10,
                                                     shuffle=False)
    mean, std = inception_score.inception_score(softmax(scores, axis=1), splits=10)
    assert mean == pytest.approx(reference_is["inception_score_mean"], rel=RELATIVE)
    assert std == pytest.approx(reference_is["inception_score_std"], rel=RELATIVE)
