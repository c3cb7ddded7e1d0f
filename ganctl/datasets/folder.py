"""Any folder of images, searched recursively, streamed from disk through tf.data."""
from __future__ import annotations

import numbers
from pathlib import Path

import numpy as np

from ganctl.datasets.base import Dataset, check_limit, check_split, log, shuffled_positions
from ganctl.errors import UserError
from ganctl.images import IMAGE_SUFFIXES, find_images

ON_BAD_FILE = ("skip", "error")
# (format, mode) pairs that tf.io.decode_image gets right; the rest (palette or 1-bit BMPs,
# CMYK JPEGs, a GIF named .png...) are decoded with Pillow instead. None: every mode.
TF_DECODES = {"PNG": None, "WEBP": None, "JPEG": {"L", "RGB"}, "BMP": {"L", "RGB", "RGBA"}}


class ImageFolder(Dataset):
    """Images resized so the short side is `resolution`, centre-cropped to a square.

    The file list is scanned once, on first use: every file's header is checked with Pillow
    (with on_bad_file="error" every file is fully decoded, so a bad one stops the run up front).
    Pixels are only read while iterating, so the folder can be larger than memory.
    With labels=True each image's class is the sub-folder of `path` it sits in (path/cat/...,
    path/dog/...), classes numbered in sorted name order, as Keras' image_dataset_from_directory
    does.
    """

    def __init__(self, path: str, resolution: int = 64, channels: int = 3,
                 on_bad_file: str = "skip", limit: int | None = None, labels: bool = False):
        if isinstance(resolution, bool) or not isinstance(resolution, numbers.Integral) \
                or resolution < 8:
            raise UserError(f"dataset.resolution={resolution!r} must be a whole number >= 8 "
                            "(images are resized and cropped to resolution x resolution).")
        if channels not in (1, 3) or isinstance(channels, bool):
            raise UserError(f"dataset.channels={channels!r} must be 1 (grayscale) or 3 (RGB).")
        if on_bad_file not in ON_BAD_FILE:
            raise UserError(f"dataset.on_bad_file={on_bad_file!r} must be 'skip' (leave unreadable "
                            "images out, with a warning) or 'error' (stop at the first one).")
        self.path = path
        self.resolution = int(resolution)
        self.channels = int(channels)
        self.on_bad_file = on_bad_file
        self.limit = check_limit(limit)
        if not isinstance(labels, bool):
            raise UserError(f"dataset.labels={labels!r} must be true (classes from sub-folder "
                            "names) or false (unlabelled).")
        self.labels = labels
        self._classes: tuple[str, ...] = ()
        self.image_shape = (self.resolution, self.resolution, self.channels)
        self._files: list[tuple[str, bool]] | None = None

    def training_size(self) -> int:
        return len(self._scan())  # file names only: the images are decoded by tf_dataset

    def arrays(self, split: str = "train", limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """uint8 images; with `limit`, a fixed random subset (sorted order would favour the first
        subfolders). The folder has no test split: "test" reads the same images."""
        import tensorflow as tf

        check_split(split)
        files = self._scan()
        chosen = np.arange(len(files))
        if limit is not None and limit < len(files):
            chosen = np.sort(np.random.default_rng(0).choice(len(files), limit, replace=False))
        labels = tf.constant(self._labels())
        pairs = (self._images(tf.data.Dataset.from_tensor_slices(chosen), labels)
                 .map(lambda image, label: (tf.cast(tf.round(image), tf.uint8), label)).batch(256))
        batches = [(x.numpy(), y.numpy()) for x, y in pairs]
        if not batches:
            return np.zeros((0, *self.image_shape), np.uint8), np.zeros(0, np.int64)
        return np.concatenate([x for x, _ in batches]), np.concatenate([y for _, y in batches])

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def class_names(self) -> tuple[str, ...]:
        if self.labels:
            self._scan()
        return self._classes

    def tf_dataset(self, batch_size: int, seed: int, skip: int = 0, repeat: bool = True):
        import tensorflow as tf

        positions = shuffled_positions(len(self._scan()), seed, skip, repeat)
        labels = tf.constant(self._labels().astype(np.int32))
        # ignore_errors in _images may drop an unreadable file, so each label travels with its
        # image rather than being looked up afterwards.
        examples = self._images(positions, labels)
        examples = examples.map(lambda image, label: (image / 127.5 - 1.0, label))
        return examples.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)

    def _labels(self) -> np.ndarray:
        """The class index of every scanned file (zeros when unlabelled)."""
        files = self._scan()
        if not self.labels:
            return np.zeros(len(files), np.int64)
        root = Path(self.path).expanduser()
        index = {name: i for i, name in enumerate(self._classes)}
        return np.array([index[Path(path).relative_to(root).parts[0]] for path, _ in files],
                        np.int64)

    def _images(self, positions, labels=None):
        """float32 images in [0, 255], one per index in the `positions` dataset; with `labels`
        (a tensor indexed like the files), (image, label) pairs."""
        import tensorflow as tf

        files = self._scan()
        paths = tf.constant([path for path, _ in files])
        with_pillow = tf.constant([pillow for _, pillow in files])
        resolution, channels = self.resolution, self.channels

        def load(index):
            path = paths[index]
            image = tf.cond(with_pillow[index],
                            lambda: tf.numpy_function(_decode_with_pillow, [path], tf.uint8),
                            lambda: tf.io.decode_image(tf.io.read_file(path),
                                                       expand_animations=False))
            image.set_shape([None, None, None])
            image = _square(_to_channels(tf.cast(image, tf.float32), channels), resolution)
            return image if labels is None else (image, tf.gather(labels, index))

        images = positions.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        # Header checks miss some damage (a truncated JPEG); such a file is dropped here.
        return images.ignore_errors() if self.on_bad_file == "skip" else images

    def _scan(self) -> list[tuple[str, bool]]:
        """[(path, decode with Pillow?)] of the readable images, sorted; sets `source`."""
        if self._files is not None:
            return self._files
        root = Path(self.path).expanduser()
        accepted = "/".join(ext[1:] for ext in IMAGE_SUFFIXES)
        if not root.is_dir():
            state = "is a file" if root.exists() else "does not exist"
            raise UserError(f"dataset.path={root} {state}; it must be a folder of images "
                            f"({accepted}, any letter case, searched recursively).")
        candidates = find_images(root)
        if not candidates:
            raise UserError(f"dataset.path={root} contains no images: looked for files ending in "
                            f"{accepted} (any letter case) in it and its subfolders.")
        files, bad = [], []
        for candidate in candidates:
            pillow, problem = _check(candidate, full=self.on_bad_file == "error")
            if problem is None:
                files.append((str(candidate), pillow))
            elif self.on_bad_file == "error":
                raise UserError(f"{candidate} is not a readable image ({problem}). Remove or "
                                "replace it, or set dataset.on_bad_file=skip to leave such files "
                                "out.")
            else:
                bad.append((candidate, problem))
        if bad:
            log.warning("dataset.path=%s: skipped %d unreadable file(s) of %d, e.g. %s (%s).",
                        root, len(bad), len(candidates), bad[0][0], bad[0][1])
        if not files:
            raise UserError(f"dataset.path={root}: none of its {len(candidates)} image files "
                            f"could be read (e.g. {bad[0][0]}: {bad[0][1]}).")
        if self.labels:
            self._classes = _class_folders(root, [Path(path) for path, _ in files])
        if self.limit is not None and self.limit < len(files):
            # A fixed random subset: the first N in path order would be the first sub-folders
            # only (whole classes missing with dataset.labels=true).
            chosen = np.random.default_rng(0).choice(len(files), self.limit, replace=False)
            files = [files[i] for i in sorted(chosen)]
        self.source = f"{len(files):,} images in {root}"
        if bad:
            self.source += f" ({len(bad)} unreadable skipped)"
        if self.limit is not None:
            self.source += f" (dataset.limit={self.limit:,}: a fixed random subset)"
        self._files = files
        return files


def _class_folders(root: Path, files: list[Path]) -> tuple[str, ...]:
    """Sorted names of the sub-folders of `root` that hold images, for dataset.labels=true."""
    loose = [path for path in files if len(path.relative_to(root).parts) == 1]
    if loose:
        raise UserError(f"dataset.labels=true takes each image's class from the sub-folder of "
                        f"dataset.path={root} it is in, but {len(loose)} image(s) sit directly "
                        f"in it (e.g. {loose[0].name}). Move them into class folders "
                        f"({root}/<class>/...), or set dataset.labels=false.")
    classes = tuple(sorted({path.relative_to(root).parts[0] for path in files}))
    if len(classes) < 2:
        raise UserError(f"dataset.labels=true needs at least two class sub-folders in "
                        f"dataset.path={root}; found {len(classes)} ({', '.join(classes)}). "
                        "Set dataset.labels=false for unlabelled images.")
    return classes


def _check(path: Path, full: bool) -> tuple[bool, str | None]:
    """(decode with Pillow?, None) for a readable image, else (False, what is wrong)."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            image_format, mode = image.format, image.mode
            if full:
                image.load()
            else:
                image.verify()  # header, and chunk checksums for PNG; reads no pixels
    except Exception as err:  # noqa: BLE001 -- Pillow raises many types for damaged files
        return False, str(err) or type(err).__name__
    if image_format == "JPEG" and not _has_jpeg_end(path):
        # TensorFlow and libjpeg decode a cut-off JPEG without an error (grey below the cut,
        # one libjpeg warning per read), so it is found here, in both on_bad_file modes alike.
        return False, "truncated JPEG: the file ends before its end-of-image marker"
    tf_modes = TF_DECODES.get(image_format, set())
    return not (image_format in TF_DECODES and (tf_modes is None or mode in tf_modes)), None


def _has_jpeg_end(path: Path, tail: int = 4096) -> bool:
    """Whether a JPEG file holds its end-of-image marker (FF D9) near its end; reading only the
    tail keeps the scan of a large folder fast. Some cameras append data after the marker."""
    with open(path, "rb") as file:
        file.seek(0, 2)
        file.seek(max(0, file.tell() - tail))
        return b"\xff\xd9" in file.read()


def _decode_with_pillow(path: bytes) -> np.ndarray:
    from PIL import Image

    with Image.open(path.decode()) as image:
        return np.asarray(image.convert("RGB"))


def _to_channels(image, channels: int):
    """1-2 channels are gray (+ alpha), 3-4 are RGB (+ alpha); alpha is dropped."""
    import tensorflow as tf

    gray = tf.shape(image)[-1] < 3
    if channels == 1:
        return tf.cond(gray, lambda: image[..., :1],
                       lambda: tf.image.rgb_to_grayscale(image[..., :3]))
    return tf.cond(gray, lambda: tf.image.grayscale_to_rgb(image[..., :1]),
                   lambda: image[..., :3])


def _square(image, resolution: int):
    """The centred square crop, resized to resolution x resolution.

    Cropping before resizing gives the same framing as "short side to `resolution`, then crop"
    while resizing fewer pixels, and keeps pixels outside the crop out of the filter.
    """
    import tensorflow as tf

    height, width = tf.shape(image)[0], tf.shape(image)[1]
    side = tf.minimum(height, width)
    image = tf.image.crop_to_bounding_box(image, (height - side) // 2, (width - side) // 2,
                                          side, side)
    image = tf.image.resize(image, [resolution, resolution], antialias=True)
    return tf.clip_by_value(image, 0.0, 255.0)
