"""Fashion-MNIST, 28x28 grayscale clothing: from dataset.path, Debian's dataset-fashion-mnist
package, the Keras cache, or a download."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ganctl.datasets import idx
from ganctl.datasets.base import FileDataset, download, keras_home
from ganctl.errors import UserError

DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
ORIGIN = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"
CACHE_SUBDIR = "datasets/fashion-mnist"  # where keras.datasets.fashion_mnist keeps it too


class FashionMNIST(FileDataset):
    """The first source that works: `path`, /usr/share/datasets/fashion-mnist,
    ~/.keras/datasets/fashion-mnist, then a download. There is no bundled fallback."""

    image_shape = (28, 28, 1)
    num_classes = 10
    classifier_key = "fashion_mnist"
    class_names = ("t-shirt_top", "trouser", "pullover", "dress", "coat", "sandal", "shirt",
                   "sneaker", "bag", "ankle_boot")

    def _read(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        if self.path is not None:
            directory = Path(self.path).expanduser()
            splits = self._read_dir(directory) if directory.is_dir() else None
            if splits is None:
                raise UserError(f"dataset.path={directory} is not a folder with the Fashion-MNIST "
                                f"IDX files {idx.EXPECTED_NAMES} (gzipped or not). Omit "
                                "dataset.path to use the Debian package or the Keras cache.")
            return splits
        cache = keras_home() / CACHE_SUBDIR
        for directory in (DEBIAN_DIR, cache):
            splits = self._read_dir(directory)
            if splits is not None:
                return splits
        # Keras' own loader pins no hashes for these files; read_idx checks their structure.
        for stem in (name for pair in idx.SPLIT_FILES.values() for name in pair):
            downloaded, why = download(f"{stem}.gz", ORIGIN + f"{stem}.gz", cache_subdir=CACHE_SUBDIR)
            if downloaded is None:
                raise UserError(
                    f"Fashion-MNIST is not available ({why}). Get it in one of three ways: "
                    "install the Debian package (apt-get install dataset-fashion-mnist, which "
                    f"puts the files in {DEBIAN_DIR}); connect to the internet once so it is "
                    f"downloaded to {cache}; or set dataset.path=<folder with "
                    f"{idx.EXPECTED_NAMES}>.")
            cache = downloaded.parent  # get_file may fall back to /tmp/.keras
        return self._read_dir(cache)

    def _read_dir(self, directory: Path) -> dict[str, tuple[np.ndarray, np.ndarray]] | None:
        splits = idx.read_idx_dir(directory, 28, 28, 10)
        if splits is not None:
            self.source = f"Fashion-MNIST IDX files in {directory}"
        return splits
