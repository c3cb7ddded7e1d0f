"""Input checks the feature metrics share: bad features get one paragraph, never a traceback or NaN.

Non-finite features break each metric differently (FID's linear algebra raises, KID returns NaN,
and the k-NN comparisons return plausible numbers, since NaN < r is simply False), so they are
refused before any metric runs.
"""
from __future__ import annotations

import numpy as np

from ganctl.errors import UserError

# Rows checked at a time, so the check of a 50,000 x 2048 set never holds a full boolean copy.
CHECK_ROWS = 8192


def non_finite_rows(array: np.ndarray) -> np.ndarray:
    """Indices of the rows of a 2-D array that hold NaN or +-Inf."""
    if not np.issubdtype(array.dtype, np.inexact):
        return np.empty(0, dtype=np.int64)     # integers cannot be NaN or Inf
    bad = [start + np.flatnonzero(~np.isfinite(array[start:start + CHECK_ROWS]).all(axis=1))
           for start in range(0, len(array), CHECK_ROWS)]
    return np.concatenate(bad) if bad else np.empty(0, dtype=np.int64)


def finite_rows(array: np.ndarray, which: str, metric: str, what: str = "feature") -> np.ndarray:
    """The array as (N, D) rows, or a UserError saying how many of the `which` set's rows are not
    finite (`which` is "real" or "fake")."""
    array = np.asarray(array)
    array = array.reshape(len(array), -1)
    bad = non_finite_rows(array)
    if len(bad):
        likely = ("a generator that diverged (score an earlier checkpoint)" if which == "fake"
                  else "images that hold NaN")
        raise UserError(
            f"{metric} cannot be computed: {len(bad)} of the {len(array)} {which} {what} rows "
            f"hold NaN or Inf (first at row {bad[0]}), and only finite values are accepted. "
            f"Non-finite values usually mean {likely} or a broken feature extractor; check the "
            f"{which} set.")
    return array


def feature_pair(real_features: np.ndarray, fake_features: np.ndarray,
                 metric: str) -> tuple[np.ndarray, np.ndarray]:
    """Both feature sets as finite (N, D) rows of one width, or a UserError naming the bad one."""
    real = finite_rows(real_features, "real", metric)
    fake = finite_rows(fake_features, "fake", metric)
    if real.shape[1] != fake.shape[1]:
        raise UserError(f"{metric} cannot be computed: the real features have {real.shape[1]} "
                        f"dimensions and the fake ones {fake.shape[1]}; both sets must come from "
                        "the same feature extractor.")
    return real, fake
