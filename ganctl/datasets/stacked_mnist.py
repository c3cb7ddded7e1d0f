"""Stacked MNIST: three MNIST digits as the R, G, B channels, 1,000 modes (VEEGAN/PacGAN)."""
from __future__ import annotations

import numbers

import numpy as np

from ganctl.datasets.base import ArrayDataset
from ganctl.datasets.mnist import MNIST
from ganctl.errors import UserError


class StackedMNIST(ArrayDataset):
    """28x28x3 images whose label 100*d0 + 10*d1 + d2 names one of 1,000 modes.

    Built from whichever MNIST ganctl finds (full set or bundled split), with fixed seeds, so
    the same pool comes back in every run. `digits` is that MNIST: the per-channel classifier
    used for mode counting learns from it.
    """

    image_shape = (28, 28, 3)
    num_classes = 1000
    # The digit classifier, read channel by channel: one cache file serves MNIST and this.
    classifier_key = MNIST.classifier_key

    def __init__(self, path: str | None = None, size: int = 60000, limit: int | None = None):
        if isinstance(size, bool) or not isinstance(size, numbers.Integral) or size < 1:
            raise UserError(f"dataset.size={size!r} must be a whole number >= 1 (the number of "
                            "stacked images to build).")
        self.digits = MNIST(path=path)
        self.size = int(size)
        self.limit = limit

    def classifier_training_set(self) -> MNIST:
        """The MNIST digits: the classifier learns single digits and reads each channel alone."""
        return self.digits

    def _read(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        splits = {"train": self._stack("train", seed=0), "test": self._stack("test", seed=1)}
        self.source = f"{self.size:,} stacks of 3 digits from {self.digits.source}"
        return splits

    def _stack(self, split: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
        x, y = self.digits.arrays(split)
        picks = np.random.default_rng(seed).integers(0, len(x), size=(self.size, 3))
        images = np.concatenate([x[picks[:, c]] for c in range(3)], axis=-1)
        labels = y[picks] @ np.array([100, 10, 1])
        return images, labels.astype(np.int64)
