"""`pixels`: downsampled pixels; a cheap fallback, and the identity for 2-D points."""
from __future__ import annotations

import math

import numpy as np

from ganctl.images import check_images
from ganctl.metrics.features.base import FeatureExtractor


class PixelExtractor(FeatureExtractor):
    """Pixels averaged over f x f blocks (largest side at most max_side), scaled to [0, 1].

    2-D points (float (N, d) arrays) pass through unchanged in float64.
    """

    name = "pixels"

    def __init__(self, max_side: int = 16):
        self.max_side = max_side

    def _batch(self, batch):
        if batch.ndim == 2 and batch.dtype.kind == "f":
            return np.asarray(batch, np.float64), None
        batch = check_images(batch)
        _, height, width, channels = batch.shape
        factor = math.ceil(max(height, width) / self.max_side)
        h, w = height // factor, width // factor
        cropped = batch[:, :h * factor, :w * factor].astype(np.float32)
        pooled = cropped.reshape(len(batch), h, factor, w, factor, channels).mean(axis=(2, 4))
        return (pooled / 255.0).reshape(len(batch), -1), None

    def describe(self):
        return {"name": self.name, "max_side": self.max_side}
