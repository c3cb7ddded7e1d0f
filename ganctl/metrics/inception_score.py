"""Inception Score (Salimans et al. 2016): exp E_x KL(p(y|x) || p(y)), averaged over splits.

Computed from any classifier's probabilities. With ganctl's own classifier it is not comparable to
published IS numbers (those use the 2015 Inception graph); it is comparable between ganctl runs.
"""
from __future__ import annotations

import numpy as np
from scipy.special import rel_entr

from ganctl.errors import UserError
from ganctl.metrics import checks

# A probability row may sum to 1 within this: float32 softmax over 1,000 classes is off by ~1e-6.
SUM_TOLERANCE = 1e-3


def inception_score(probs: np.ndarray, splits: int = 10) -> tuple[float, float]:
    """(mean, std) of IS over `splits` consecutive parts of `probs` (N, classes).

    Part i holds rows floor(i N / splits) to floor((i + 1) N / splits), as in Salimans et al.'s
    code and torch-fidelity (np.array_split sizes them differently). rel_entr gives
    0 * log 0 = 0, so confident one-hot predictions need no epsilon.
    """
    probs = np.asarray(probs)
    if probs.ndim != 2:
        raise ValueError(f"inception_score needs (N, classes) probabilities, got {probs.shape}")
    if len(probs) < splits:
        raise UserError(f"The Inception Score is averaged over {splits} splits, but there are only "
                        f"{len(probs)} samples. Raise num= (ganctl eval "
                        "num=5000; 5,000 or more is usual).")
    check_probabilities(probs)
    n = len(probs)
    scores = []
    for i in range(splits):
        p = np.asarray(probs[i * n // splits:(i + 1) * n // splits], np.float64)
        p_y = p.mean(axis=0, keepdims=True)
        scores.append(np.exp(rel_entr(p, p_y).sum(axis=1).mean()))
    return float(np.mean(scores)), float(np.std(scores))


def check_probabilities(probs: np.ndarray) -> None:
    """UserError unless every row is finite, non-negative and sums to 1 (within SUM_TOLERANCE).

    Without it, doubled probabilities or logits give a plausible-looking score.
    """
    checks.finite_rows(probs, "fake", "The Inception Score", what="probability")
    negative_rows = np.flatnonzero((probs < 0).any(axis=1))
    if len(negative_rows):
        raise UserError(f"The Inception Score needs class probabilities, but {len(negative_rows)} "
                        f"of the {len(probs)} rows hold negative values (smallest "
                        f"{probs.min():.3g}, first at row {negative_rows[0]}). Non-negative rows "
                        "that sum to 1 are accepted, such as a softmax; logits are not.")
    sums = probs.sum(axis=1, dtype=np.float64)
    off_rows = np.flatnonzero(np.abs(sums - 1.0) > SUM_TOLERANCE)
    if len(off_rows):
        raise UserError(f"The Inception Score needs class probabilities, but {len(off_rows)} of "
                        f"the {len(probs)} rows do not sum to 1 (their sums range from "
                        f"{sums[off_rows].min():.4g} to {sums[off_rows].max():.4g}, first at row "
                        f"{off_rows[0]}). Rows that sum to 1 within {SUM_TOLERANCE:g} are "
                        "accepted, such as a softmax.")
