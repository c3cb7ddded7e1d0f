"""CIFAR-10, 32x32 colour images in 10 classes, read from the binary version of the dataset.

The "python version" that keras.datasets.cifar10 uses is a set of pickles, and unpickling a file
can run arbitrary code; the binary version is plain fixed-size records, so only it is read.
"""
from __future__ import annotations

import shutil
import tarfile
from pathlib import Path

import numpy as np

from ganctl.datasets.base import FileDataset, download, keras_home
from ganctl.errors import UserError

ORIGIN = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
SHA256 = "c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd"  # md5 c32a1d4a... on the site
BIN_DIR = "cifar-10-batches-bin"
SPLIT_FILES = {"train": [f"data_batch_{i}.bin" for i in range(1, 6)], "test": ["test_batch.bin"]}
BATCH_FILES = [*SPLIT_FILES["train"], *SPLIT_FILES["test"]]
RECORD_BYTES = 1 + 32 * 32 * 3  # label byte, then the red, green and blue planes, row-major
HOW_TO_GET = (f"Get the binary version of CIFAR-10 in one of three ways: connect to the internet "
              f"once (without dataset.path) so ganctl downloads it into the Keras cache; download "
              f"{ORIGIN} yourself and extract it into ~/.keras/datasets (or $KERAS_HOME/datasets); "
              f"or extract it anywhere and set dataset.path=<the {BIN_DIR} folder>.")


class CIFAR10(FileDataset):
    """The first source that works: `path`, ~/.keras/datasets/cifar-10-batches-bin, then a
    hash-checked download of the binary archive (only its six batch files are extracted)."""

    image_shape = (32, 32, 3)
    num_classes = 10
    classifier_key = "cifar10"
    class_names = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                   "ship", "truck")

    def _read(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        if self.path is not None:
            return self._read_user_path(Path(self.path).expanduser())
        cache = keras_home() / "datasets" / BIN_DIR
        if not _has_batches(cache):
            archive, why = download("cifar-10-binary.tar.gz", ORIGIN, file_hash=SHA256)
            if archive is None:
                raise UserError(f"CIFAR-10 is not in {cache} and {why}. {HOW_TO_GET}")
            cache = archive.parent / BIN_DIR
            _extract_batches(archive, cache)
        return self._read_dir(cache)

    def _read_user_path(self, path: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        for directory in (path, path / BIN_DIR):
            if _has_batches(directory):
                return self._read_dir(directory)
        if _is_python_version(path):
            raise UserError(f"dataset.path={path} is the pickled 'python version' of CIFAR-10. "
                            "ganctl does not read it because unpickling a file can run arbitrary "
                            f"code. {HOW_TO_GET}")
        raise UserError(f"dataset.path={path} holds no CIFAR-10 binary batches: expected a "
                        f"{BIN_DIR} folder with {', '.join(BATCH_FILES)}. "
                        f"{HOW_TO_GET}")

    def _read_dir(self, directory: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        splits = {split: read_batches([directory / name for name in names])
                  for split, names in SPLIT_FILES.items()}
        self.source = f"CIFAR-10 binary batches in {directory}"
        return splits


def read_batches(paths: list[Path]) -> tuple[np.ndarray, np.ndarray]:
    """(x uint8 NHWC, y int64) from CIFAR-10 binary batch files."""
    batches = []
    for path in paths:
        data = np.fromfile(path, dtype=np.uint8)
        if data.size == 0 or data.size % RECORD_BYTES:
            raise UserError(f"{path} is not a CIFAR-10 binary batch: its {data.size:,} bytes are "
                            f"not a whole number of {RECORD_BYTES:,}-byte records. "
                            "Download it again.")
        if data[::RECORD_BYTES].max() > 9:
            raise UserError(f"{path} is not a CIFAR-10 binary batch: it has labels above 9.")
        batches.append(data.reshape(-1, RECORD_BYTES))
    records = np.concatenate(batches)
    # One contiguous NHWC copy: TF converts contiguous arrays with a plain memcpy.
    images = np.ascontiguousarray(records[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
    return images, records[:, 0].astype(np.int64)


def _has_batches(directory: Path) -> bool:
    return all((directory / name).is_file() for name in BATCH_FILES)


def _is_python_version(path: Path) -> bool:
    return (path.name.startswith("cifar-10-python") or (path / "cifar-10-batches-py").is_dir()
            or (path / "data_batch_1").is_file() or (path / "batches.meta").is_file())


def _extract_batches(archive: Path, destination: Path) -> None:
    """Copy only the six known batch files out of the archive, so no member path is trusted."""
    destination.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "r:gz") as tar:
        for name in BATCH_FILES:
            try:
                member = tar.getmember(f"{BIN_DIR}/{name}")
            except KeyError:
                member = None
            source = tar.extractfile(member) if member is not None and member.isfile() else None
            if source is None:
                raise UserError(f"{archive} has no regular file {BIN_DIR}/{name}; delete it and "
                                "let ganctl download it again.")
            partial = destination / f"{name}.partial"
            with source, open(partial, "wb") as target:
                shutil.copyfileobj(source, target)
            partial.replace(destination / name)  # a complete file or none, if interrupted
