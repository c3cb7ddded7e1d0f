"""Inception Score (Salimans et al. 2016): exp E_x KL(p(y|x) || p(y)), averaged over splits.

Computed from any classifier's probabilities. With ganctl's own classifier it is not comparable to
published IS numbers (those use the 2015 Inception graph); it is comparable between ganctl runs.
"""
from __future__ import annotations

import numpy as np
from scipy.special import rel_entr

from ganctl.errors import UserError


def inception_score(probs: np.ndarray, splits: int = 10) -> tuple[float, float]:
    """(mean, std) of IS over `splits` consecutive equal parts of `probs` (N, classes).

    rel_entr gives 0 * log 0 = 0, so confident one-hot predictions need no epsilon.
    """
    probs = np.asarray(probs)
    if probs.ndim != 2:
        raise ValueError(f"inception_score needs (N, classes) probabilities, got {probs.shape}")
    if len(probs) < splits:
        raise UserError(f"The Inception Score is averaged over {splits} splits, but there are only "
                        f"{len(probs)} samples. Raise eval.num (5,000 or more is usual).")
    scores = []
    for part in np.array_split(np.arange(len(probs)), splits):
        p = np.asarray(probs[part], np.float64)
        p_y = p.mean(axis=0, keepdims=True)
        scores.append(np.exp(rel_entr(p, p_y).sum(axis=1).mean()))
    return float(np.mean(scores)), float(np.std(scores))
