"""What the image-to-image datasets share: two domains A and B read from files, resized to
`load_size`, randomly cropped to `resolution` and flipped, streamed through tf.data.

The augmentation of each example is drawn from (seed, its position in the stream), never cached,
so it is re-drawn every epoch and a resumed run continues with exactly the same crops.
"""
from __future__ import annotations

import abc
import numbers
from pathlib import Path

import numpy as np

from ganctl.datasets.base import Dataset, check_limit, check_split
from ganctl.errors import UserError

# Folder names of the two domains, for training and test, as pix2pix's and CycleGAN's datasets
# (facades, horse2zebra...) ship them.
DOMAIN_FOLDERS = (("A", "B"), ("trainA", "trainB"))
TEST_FOLDERS = ("testA", "testB")
# The other stream of an unpaired dataset: B's order and crops are not A's.
B_STREAM = 1_000_003


class Split:
    """One split's files: `a[i]` and `b[i]` are partners when paired; with `side_by_side` each
    file holds A (left half) and B (right half), so a == b."""

    def __init__(self, a: list[Path], b: list[Path], side_by_side: bool = False):
        self.a, self.b, self.side_by_side = a, b, side_by_side


class TranslationDataset(Dataset):
    """Two image domains. `tf_dataset` yields (a, b) batches in [-1, 1]; `pairs` gives each
    split's images as uint8 at `resolution` (resized, not cropped) for sampling and scoring;
    `arrays` gives domain B, what translated images are compared with."""

    paired: bool

    def __init__(self, path: str, resolution: int = 256, load_size: int = 286, flip: bool = True,
                 channels: int = 3, limit: int | None = None):
        for key, value in (("resolution", resolution), ("load_size", load_size)):
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 8:
                raise UserError(f"dataset.{key}={value!r} must be a whole number >= 8.")
        if load_size < resolution:
            raise UserError(f"dataset.load_size={load_size} is smaller than dataset.resolution="
                            f"{resolution}; images are resized to load_size, then cropped to "
                            "resolution, so load_size must be at least resolution.")
        if channels not in (1, 3) or isinstance(channels, bool):
            raise UserError(f"dataset.channels={channels!r} must be 1 (grayscale) or 3 (RGB).")
        self.path, self.resolution, self.load_size = path, int(resolution), int(load_size)
        self.flip, self.channels, self.limit = bool(flip), int(channels), check_limit(limit)
        self.image_shape = (self.resolution, self.resolution, self.channels)
        self._splits: dict[str, Split] | None = None

    kind = "translation"

    @property
    def bounded(self) -> bool:
        return True

    @abc.abstractmethod
    def _find(self, root: Path) -> tuple[Split, Split | None]:
        """(train, test or None) file lists found under `root`."""

    def split(self, split: str = "train") -> Split:
        check_split(split)
        if self._splits is None:
            root = Path(str(self.path)).expanduser()
            if not root.is_dir():
                raise UserError(f"dataset.path={self.path} is not a folder. Give the folder that "
                                f"holds the two domains (see `ganctl train --help`).")
            train, test = self._find(root)
            for files in (train.a, train.b):
                if not files:
                    raise UserError(f"dataset.path={root} holds no training images for one of "
                                    "the two domains.")
            if self.limit is not None:
                train = Split(train.a[:self.limit], train.b[:self.limit], train.side_by_side)
            for part in (train, test or train):
                _check_files(part.a + (part.b if not part.side_by_side else []))
            what = "pairs" if self.paired else "A / B images"
            counts = (f"{len(train.a):,}" if self.paired
                      else f"{len(train.a):,} / {len(train.b):,}")
            self.source = f"{counts} {what} in {root}" + (
                f" (first {self.limit:,})" if self.limit is not None else "") + (
                f", test split {len(test.a):,}" if test else
                ", no test split (the training images stand in for it)")
            self._splits = {"train": train, "test": test or train}
        return self._splits[split]

    def pairs(self, split: str = "test", limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(A, B) uint8 NHWC at resolution x resolution, in file order, at most `limit` each."""
        import tensorflow as tf

        files = self.split(split)
        size = [self.resolution] * 2
        out = []
        for domain in ("a", "b"):
            paths = getattr(files, domain)[:limit]
            images = [tf.image.resize(self._load(str(p), domain if files.side_by_side else ""),
                                      size, antialias=True) for p in paths]
            out.append(np.stack([np.clip(np.rint(i.numpy()), 0, 255).astype(np.uint8)
                                 for i in images]) if images
                       else np.zeros((0, *self.image_shape), np.uint8))
        return out[0], out[1]

    def arrays(self, split: str = "train", limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Domain B (the images G learns to make), unlabelled."""
        b = self.pairs(split, limit)[1]
        return b, np.zeros(len(b), np.int64)

    def _load(self, path, half: str = ""):
        """One file as float32 [0, 255] HWC with the configured channels; half "a"/"b": the
        left or right half of a side-by-side file."""
        import tensorflow as tf

        from ganctl.datasets.folder import _to_channels

        image = tf.io.decode_image(tf.io.read_file(path), expand_animations=False)
        image.set_shape([None, None, None])
        image = _to_channels(tf.cast(image, tf.float32), self.channels)
        image.set_shape([None, None, self.channels])
        if half:
            width = tf.shape(image)[1] // 2
            image = image[:, :width] if half == "a" else image[:, width:2 * width]
        return image

    def _augment(self, images, seed):
        """Resize to load_size, then one random crop and flip for all of `images` (a pair's two
        halves get the same), drawn from the stateless `seed`; [-1, 1] out."""
        import tensorflow as tf

        size = [self.load_size] * 2
        stacked = tf.concat([tf.image.resize(i, size, antialias=True) for i in images], -1)
        if self.load_size > self.resolution:
            stacked = tf.image.stateless_random_crop(
                stacked, [self.resolution, self.resolution, self.channels * len(images)], seed=seed)
        if self.flip:
            # Another seed than the crop's, so crop and flip are drawn independently.
            stacked = tf.image.stateless_random_flip_left_right(stacked, seed=tf.reverse(seed, [0]))
        stacked = tf.clip_by_value(stacked, 0.0, 255.0) / 127.5 - 1.0
        return tf.split(stacked, len(images), axis=-1)

    def _stream(self, n: int, seed: int, skip: int, stream: int = 0):
        """(file index, augmentation seed) from position `skip` on, reshuffled every epoch."""
        import tensorflow as tf

        from ganctl.datasets.base import shuffled_positions

        positions = tf.data.Dataset.counter(skip).map(
            lambda position: tf.stack([tf.constant(seed + stream, tf.int64), position]))
        return tf.data.Dataset.zip(shuffled_positions(n, seed + stream, skip), positions)

    def _batched(self, examples, batch_size: int):
        import tensorflow as tf

        return examples.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)


def _check_files(paths: list[Path]) -> None:
    """A UserError naming the first file that is not a readable image."""
    from ganctl.datasets.folder import _check

    for path in paths:
        _, problem = _check(path, full=False)
        if problem:
            raise UserError(f"{path} is not a readable image ({problem}). Remove or replace it; "
                            "every file of a translation dataset is used.")


def domain_folders(root: Path, names=DOMAIN_FOLDERS) -> tuple[Path, Path] | None:
    """The (A, B) training folders of `root` (A/ and B/, or trainA/ and trainB/), or None."""
    for a, b in names:
        if (root / a).is_dir() and (root / b).is_dir():
            return root / a, root / b
    return None

