"""What every dataset provides: shapes and value range up front, a tf.data pipeline on demand."""
from __future__ import annotations

import abc
import copy
import contextlib
import hashlib
import logging
import numbers
import os
import socket
from pathlib import Path

import numpy as np

from ganctl.errors import UserError

log = logging.getLogger("ganctl")

DOWNLOAD_TIMEOUT_S = 10
SPLITS = ("train", "test")


class Dataset(abc.ABC):
    """Base for datasets. Constructing one is cheap; data is read by `tf_dataset`/`arrays`.

    Subclasses set `image_shape` (H, W, C for images; (2,) for points), `num_classes`
    (0 when unlabelled), `kind` ("image" or "points") and, once loaded, `source` (a short
    description of the files actually used; it is recorded in the run's config.yaml). A labelled
    image dataset sets `classifier_key` to get a feature classifier of its own.
    A subclass that leaves out `arrays` or `tf_dataset` cannot be instantiated.
    """

    image_shape: tuple[int, ...]
    num_classes: int = 0
    kind: str = "image"
    source: str = ""
    # The cache name of ganctl's feature classifier for this dataset (metrics/features/
    # classifier.py); None: no classifier, so features=auto uses Inception.
    classifier_key: str | None = None

    def classifier_training_set(self) -> Dataset:
        """The labelled dataset the feature classifier learns: this one, unless a subclass
        builds its images from another dataset's (Stacked MNIST from MNIST's digits)."""
        return self

    @property
    def class_names(self) -> tuple[str, ...]:
        """One name per label, used for folder names of synthetic datasets; "0", "1"... unless
        the dataset knows better (CIFAR-10's classes, a folder's sub-folder names)."""
        return tuple(str(label) for label in range(self.num_classes))

    @property
    def bounded(self) -> bool:
        """Images live in [-1, 1], so G ends in tanh; points are unbounded."""
        return self.kind == "image"

    @abc.abstractmethod
    def arrays(self, split: str = "train", limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(x, y) as numpy: x uint8 NHWC for images or float32 (N, 2) for points; y int64 labels
        (zeros when unlabelled). Streaming datasets (folder) read at most `limit` examples."""

    def training_size(self) -> int:
        """Training examples per epoch. Streaming datasets override it to count without decoding."""
        return len(self.arrays("train")[0])

    @abc.abstractmethod
    def tf_dataset(self, batch_size: int, seed: int, skip: int = 0, repeat: bool = True):
        """A shuffled (by `seed`), batched (drop_remainder), prefetched tf.data.Dataset of
        (x, y): x float32 in [-1, 1] NHWC for images (raw coordinates for points), y int32.
        `skip` examples are dropped first (cheaply, before decoding), so a resumed run continues
        the same data order: the order is a pure function of (seed, position)."""


class ArrayDataset(Dataset):
    """A dataset small enough to hold in memory as numpy arrays, one pair per split.

    Subclasses implement `_read()` -> {"train": (x, y), "test": (x, y)} and set `source` there.
    """

    limit: int | None = None
    _loaded: dict[str, tuple[np.ndarray, np.ndarray]] | None = None

    @abc.abstractmethod
    def _read(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """{"train": (x, y), "test": (x, y)}, read from wherever the dataset lives."""

    def classifier_training_set(self) -> Dataset:
        """Every training example, whatever dataset.limit: the feature classifier is one scorer,
        cached per dataset, for all its runs, so runs trained on different shares compare."""
        if self.limit is None:
            return self
        whole = copy.copy(self)
        whole.limit, whole._loaded = None, None  # read again, so its source names no limit
        return whole

    def _splits(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        if self._loaded is None:
            splits = self._read()
            if len(splits["train"][0]) == 0:
                raise UserError(f"{self.source} holds no training examples.")
            if self.limit is not None:
                self.source += f" (first {self.limit:,} training examples)"
            self._loaded = splits
        return self._loaded

    def arrays(self, split: str = "train", limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        check_split(split)
        x, y = self._splits()[split]
        # `limit` in the config restricts training data only; the test split stays whole.
        for n in (self.limit if split == "train" else None, limit):
            if n is not None:
                x, y = x[:n], y[:n]
        return x, y

    def tf_dataset(self, batch_size: int, seed: int, skip: int = 0, repeat: bool = True):
        import tensorflow as tf

        x, y = self.arrays("train")
        examples, labels = tf.constant(x), tf.constant(y.astype(np.int32))
        images = self.kind == "image"

        def gather(index):
            batch = tf.gather(examples, index)
            # Converting whole batches is much faster than converting example by example.
            if images:
                batch = tf.cast(batch, tf.float32) / 127.5 - 1.0
            return batch, tf.gather(labels, index)

        positions = shuffled_positions(len(x), seed, skip, repeat)
        return (positions.batch(batch_size, drop_remainder=True)
                .map(gather, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
                .prefetch(tf.data.AUTOTUNE))


class FileDataset(ArrayDataset):
    """A labelled set read from `path` when given, else from the places ganctl knows (subclasses'
    `_read`); `limit` keeps the first N training examples."""

    def __init__(self, path: str | None = None, limit: int | None = None):
        self.path = path
        self.limit = check_limit(limit)


def shuffled_positions(n: int, seed: int, skip: int = 0, repeat: bool = True):
    """Example indices in training order: epoch e is a permutation of range(n) keyed by (seed, e).

    A stateless permutation per epoch makes the order a pure function of (seed, position),
    independent of TF's global seed, and lets a resumed run jump to position `skip` at once.
    """
    import tensorflow as tf

    first_epoch, offset = divmod(int(skip), n)
    if repeat:
        epochs = tf.data.Dataset.counter(first_epoch)
    else:
        epochs = tf.data.Dataset.range(first_epoch, 1)  # one pass: empty once skip >= n
    seed = tf.constant(int(seed), tf.int64)

    def permutation(epoch):
        order = tf.random.experimental.stateless_shuffle(tf.range(n, dtype=tf.int64),
                                                         seed=tf.stack([seed, epoch]))
        return tf.data.Dataset.from_tensor_slices(order)

    return epochs.flat_map(permutation).skip(offset)


def check_split(split: str) -> str:
    if split not in SPLITS:
        raise UserError(f"split={split!r} is not a dataset split; use 'train' or 'test'.")
    return split


def check_limit(limit: int | None) -> int | None:
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, numbers.Integral)
                              or limit < 1):
        raise UserError(f"dataset.limit={limit!r} must be a whole number >= 1 (the number of "
                        "training examples to use), or null for all of them.")
    return limit


def keras_home() -> Path:
    """Keras' cache root, read now (Keras itself reads KERAS_HOME once, at import)."""
    if "KERAS_HOME" in os.environ:
        return Path(os.environ["KERAS_HOME"])
    home = os.path.expanduser("~")
    return Path(home if os.access(home, os.W_OK) else "/tmp") / ".keras"


def offline() -> bool:
    return os.environ.get("GANCTL_OFFLINE", "").strip().lower() not in ("", "0", "false", "no")


def download(fname: str, origin: str, file_hash: str | None = None,
             cache_subdir: str = "datasets") -> tuple[Path | None, str]:
    """(path, "") after a Keras get_file into the Keras cache, or (None, why it failed).

    The socket timeout keeps an offline machine from hanging; GANCTL_OFFLINE=1 skips the attempt.
    """
    if offline():
        return None, "downloads are off (GANCTL_OFFLINE=1)"
    cached = (keras_home() / cache_subdir / fname).is_file()
    unreachable = "" if cached else _unreachable(origin)
    if unreachable:
        # Checked first: Keras prints "Downloading data from ..." before it finds out.
        return None, f"downloading {origin} failed ({unreachable})"
    from keras.utils import get_file

    cache_dir = keras_home()
    # get_file silently switches to /tmp/.keras when the cache root does not exist yet.
    with contextlib.suppress(OSError):
        cache_dir.mkdir(parents=True, exist_ok=True)
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
    try:
        path = get_file(fname, origin=origin, file_hash=file_hash, cache_subdir=cache_subdir,
                        cache_dir=str(cache_dir))
        return Path(path), ""
    except Exception as err:  # noqa: BLE001 -- get_file raises bare Exception when offline
        return None, f"downloading {origin} failed ({err})"
    finally:
        socket.setdefaulttimeout(previous)


def _unreachable(origin: str) -> str:
    """Why the host of `origin` cannot be reached ("" when it can), within the timeout."""
    from urllib.parse import urlsplit

    url = urlsplit(origin)
    port = url.port or (443 if url.scheme == "https" else 80)
    if url.scheme == "file" or not url.hostname:
        return ""
    try:
        socket.create_connection((url.hostname, port), timeout=DOWNLOAD_TIMEOUT_S).close()
        return ""
    except OSError as err:
        return f"{url.hostname} is unreachable: {err.strerror or err}"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
