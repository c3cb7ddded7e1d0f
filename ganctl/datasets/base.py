"""What every dataset provides: shapes and value range up front, a tf.data pipeline on demand."""
from __future__ import annotations

import numpy as np


class Dataset:
    """Base for datasets. Constructing one is cheap; data is read by `tf_dataset`/`arrays`.

    Subclasses set `image_shape` (H, W, C for images; (2,) for points), `num_classes`
    (0 when unlabelled), `kind` ("image" or "points") and, once loaded, `source` (a short
    description of the files actually used; it is recorded in the run's config.yaml).
    """

    image_shape: tuple[int, ...]
    num_classes: int = 0
    kind: str = "image"
    source: str = ""

    @property
    def bounded(self) -> bool:
        """Images live in [-1, 1], so G ends in tanh; points are unbounded."""
        return self.kind == "image"

    def arrays(self, split: str = "train", limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(x, y) as numpy: x uint8 NHWC for images or float32 (N, 2) for points; y int64 labels
        (zeros when unlabelled). Streaming datasets (folder) read at most `limit` examples."""
        raise NotImplementedError

    def tf_dataset(self, batch_size: int, seed: int, skip: int = 0, repeat: bool = True):
        """A shuffled (by `seed`), batched (drop_remainder), prefetched tf.data.Dataset of
        (x, y): x float32 in [-1, 1] NHWC for images (raw coordinates for points), y int32.
        `skip` examples are dropped first (cheaply, before decoding), so a resumed run continues
        the same data order: the order is a pure function of (seed, position)."""
        raise NotImplementedError
