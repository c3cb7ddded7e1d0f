"""MNIST, 28x28 grayscale digits: from dataset.path, the Keras cache, a download, or the bundled
test split when offline."""
from __future__ import annotations

import importlib.resources
import zipfile
from pathlib import Path

import numpy as np

from ganctl.datasets import idx
from ganctl.datasets.base import FileDataset, download, keras_home, log, sha256_of
from ganctl.errors import UserError

ORIGIN = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz"
SHA256 = "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"
NPZ_KEYS = {"train": ("x_train", "y_train"), "test": ("x_test", "y_test")}


class MNIST(FileDataset):
    """The first source that works: `path`, ~/.keras/datasets/mnist.npz, a hash-checked
    download, then the 10,000-image test split shipped with ganctl (so training works offline)."""

    image_shape = (28, 28, 1)
    num_classes = 10
    classifier_key = "mnist"

    def _read(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        if self.path is not None:
            return self._read_user_path(Path(self.path).expanduser())
        cached = keras_home() / "datasets" / "mnist.npz"
        # Only the known file is trusted; any other is replaced by get_file below.
        if cached.is_file() and sha256_of(cached) == SHA256:
            return self._read_npz(cached)
        downloaded, why = download("mnist.npz", ORIGIN, file_hash=SHA256)
        if downloaded is not None:
            return self._read_npz(downloaded)
        return self._read_bundled(why)

    def _read_user_path(self, path: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        if path.is_file():
            return self._read_npz(path)
        if (path / "mnist.npz").is_file():
            return self._read_npz(path / "mnist.npz")
        if path.is_dir():
            splits = idx.read_idx_dir(path, 28, 28, 10)
            if splits is not None:
                self.source = f"MNIST IDX files in {path}"
                return splits
        raise UserError(f"dataset.path={path} holds no MNIST data: expected mnist.npz (the Keras "
                        f"file), or a folder containing mnist.npz or the four IDX files "
                        f"{idx.EXPECTED_NAMES} (gzipped or not). Omit dataset.path to use the "
                        "Keras cache or a download.")

    def _read_npz(self, path: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        splits = read_mnist_npz(path, 28, 28, 10)
        self.source = str(path)
        return splits

    def _read_bundled(self, why: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        data = importlib.resources.files("ganctl.data")
        with importlib.resources.as_file(data / "t10k-images-idx3-ubyte.gz") as images, \
                importlib.resources.as_file(data / "t10k-labels-idx1-ubyte.gz") as labels:
            test = idx.read_split(images, labels, 28, 28, 10)
        log.warning("Using the bundled MNIST test split (10,000 images) for training and testing, "
                    "because the full set is not available: %s. For all 60,000 training images, "
                    "connect to the internet once or set dataset.path=<folder with mnist.npz or "
                    "the IDX .gz files>.", why)
        self.source = (f"bundled MNIST test split (10,000 images, used as both train and test): "
                       f"{images.parent}")
        return {"train": test, "test": test}


def read_mnist_npz(path: Path, height: int, width: int, num_classes: int
                   ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Both splits from a Keras-style npz (x_train, y_train, x_test, y_test), checked."""
    try:
        # allow_pickle=False: an npz from elsewhere must not be able to run code.
        with np.load(path, allow_pickle=False) as npz:
            arrays = {split: (npz[x_key], npz[y_key]) for split, (x_key, y_key) in NPZ_KEYS.items()}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
        raise UserError(f"{path} is not a readable MNIST-style npz file with arrays x_train, "
                        f"y_train, x_test, y_test ({err}).") from err
    splits = {}
    for split, (x, y) in arrays.items():
        if x.dtype != np.uint8 or x.shape[1:] != (height, width) or y.shape != (len(x),):
            raise UserError(f"{path}: {NPZ_KEYS[split][0]} has {x.dtype} shape {x.shape} with "
                            f"labels of shape {y.shape}; expected uint8 (N, {height}, {width}) "
                            "and N labels.")
        if y.size and (y.min() < 0 or y.max() >= num_classes):
            raise UserError(f"{path}: {NPZ_KEYS[split][1]} has labels outside 0..{num_classes - 1}.")
        splits[split] = (x[..., None], y.astype(np.int64))
    return splits
