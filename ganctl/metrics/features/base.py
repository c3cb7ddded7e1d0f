"""What every feature extractor shares: the Extracted result, batching, input checks, the base class.

Input convention: uint8 images, NHWC, values 0..255 (what datasets' `arrays()` and image files
give; use `ganctl.images.to_uint8` for generator output in [-1, 1]). 2-D points (float, (N, 2)) go only to
`pixels`, which passes them through. Input is an array or an iterable of array batches, and is
processed one batch at a time, so memory stays bounded by the features themselves.
"""
from __future__ import annotations

import abc
import dataclasses
import math
from collections.abc import Iterable, Iterator

import numpy as np

from ganctl.errors import UserError


@dataclasses.dataclass
class Extracted:
    """What one pass over a set gives. features are float32 (float64 for points)."""

    features: np.ndarray                   # (N, D)
    probs: np.ndarray | None = None        # (N, classes), rows sum to 1
    labels: np.ndarray | None = None       # (N,) predicted class (Stacked MNIST: 100*d0+10*d1+d2)
    num_labels: int = 0


def iter_batches(images: np.ndarray | Iterable[np.ndarray],
                 batch_size: int) -> Iterator[np.ndarray]:
    """Batches of at most batch_size from an array or from an iterable of arrays."""
    chunks = (images,) if isinstance(images, np.ndarray) else images
    for chunk in chunks:
        chunk = np.asarray(chunk)
        for start in range(0, len(chunk), batch_size):
            yield chunk[start:start + batch_size]


def _progress(batches: Iterator, total: int | None, progress: bool, what: str):
    if not progress:
        return batches
    from tqdm import tqdm
    return tqdm(batches, total=total, desc=what, unit="batch", leave=False)


def _num_batches(images, batch_size: int) -> int | None:
    return math.ceil(len(images) / batch_size) if isinstance(images, np.ndarray) else None


def inference_function(model, preprocess=None):
    """uint8 batch -> model(preprocess(float32 batch), training=False) as a list of numpy arrays.

    One tf.function with reduce_retracing, so the last, smaller batch of a set reuses the traced
    graph instead of tracing again for each new batch size (predict_on_batch would).
    """
    import tensorflow as tf

    @tf.function(reduce_retracing=True, autograph=False)  # no control flow to convert
    def forward(batch):
        batch = tf.cast(batch, tf.float32)
        outputs = model(preprocess(batch) if preprocess else batch, training=False)
        return outputs if isinstance(outputs, (list, tuple)) else [outputs]

    return lambda batch: [np.asarray(output, np.float32) for output in forward(batch)]


class FeatureExtractor(abc.ABC):
    """Base: `extract` streams batches through `_batch` and concatenates the results."""

    name = ""
    gives_probs = False
    max_batch_size: int | None = None     # caps the caller's batch size where activations are big

    def extract(self, images, batch_size: int = 250, progress: bool = False) -> Extracted:
        batch_size = min(batch_size, self.max_batch_size or batch_size)
        parts: list[tuple] = []
        batches = _progress(iter_batches(images, batch_size),
                            _num_batches(images, batch_size), progress, f"{self.name} features")
        for batch in batches:
            parts.append(self._batch(batch))
        if not parts:
            raise UserError("There are no images to extract features from (the set is empty).")
        features = np.concatenate([p[0] for p in parts])
        probs = np.concatenate([p[1] for p in parts]) if parts[0][1] is not None else None
        return self._finish(features, probs)

    @abc.abstractmethod
    def _batch(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """(features, class probabilities or None) for one uint8 batch."""

    def _finish(self, features: np.ndarray, probs: np.ndarray | None) -> Extracted:
        labels = probs.argmax(axis=1) if probs is not None else None
        return Extracted(features, probs, labels, probs.shape[1] if probs is not None else 0)

    def describe(self) -> dict:
        """Provenance recorded next to the metric values."""
        return {"name": self.name}
