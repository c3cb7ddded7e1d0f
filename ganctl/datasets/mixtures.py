"""2-D Gaussian mixtures (ring, grid): toy data where mode collapse is visible and countable."""
from __future__ import annotations

import numbers

import numpy as np

from ganctl.datasets.base import ArrayDataset
from ganctl.errors import UserError


class GaussianMixture(ArrayDataset):
    """Equal-weight isotropic Gaussians around `modes`; the label of a point is its mode's index.

    The pool is drawn with fixed seeds (0 for train, 1 for test), so `arrays()` is the same in
    every run; training seeds only change the order.
    """

    kind = "points"
    image_shape = (2,)

    def __init__(self, modes: np.ndarray, std: float, size: int):
        if isinstance(std, bool) or not isinstance(std, numbers.Real) or not std > 0:
            raise UserError(f"dataset.std={std!r} must be a number > 0 (the standard deviation "
                            "of each Gaussian mode).")
        if isinstance(size, bool) or not isinstance(size, numbers.Integral) or size < 1:
            raise UserError(f"dataset.size={size!r} must be a whole number >= 1 (the number of "
                            "points drawn for the training pool).")
        self.modes = np.asarray(modes, dtype=np.float32)
        self.std = float(std)
        self.size = int(size)
        self.num_classes = len(self.modes)

    def _read(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        self.source = (f"{self.num_classes} Gaussians (std {self.std:g}), {self.size:,} points "
                       "drawn with a fixed seed")
        return {"train": self._draw(seed=0), "test": self._draw(seed=1)}

    def _draw(self, seed: int) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng(seed)
        labels = rng.integers(0, self.num_classes, size=self.size)
        points = self.modes[labels] + self.std * rng.standard_normal((self.size, 2))
        return points.astype(np.float32), labels.astype(np.int64)


class Ring(GaussianMixture):
    """8 Gaussians evenly spaced on the unit circle."""

    def __init__(self, std: float = 0.01, size: int = 100000):
        angles = 2 * np.pi * np.arange(8) / 8
        super().__init__(np.stack([np.cos(angles), np.sin(angles)], axis=1), std, size)


class Grid(GaussianMixture):
    """25 Gaussians at {-4, -2, 0, 2, 4}^2."""

    def __init__(self, std: float = 0.05, size: int = 100000):
        coords = np.arange(-4, 5, 2)
        super().__init__(np.array([(x, y) for x in coords for y in coords]), std, size)
