"""Reader for IDX files, the format of MNIST and Fashion-MNIST (gzipped or raw)."""
from __future__ import annotations

import gzip
import math
import struct
import zlib
from pathlib import Path

import numpy as np

from ganctl.errors import UserError

# Third byte of the magic number -> element type (big-endian), as in LeCun's format description.
IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}

# The standard file names (without .gz) of MNIST-style data, per split: (images, labels).
SPLIT_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
EXPECTED_NAMES = ", ".join(f"{name}.gz" for pair in SPLIT_FILES.values() for name in pair)


def read_idx(path: str | Path) -> np.ndarray:
    """The array stored in an IDX file, after checking its magic number, dims and length."""
    path = Path(path)
    try:
        with (gzip.open if path.name.endswith(".gz") else open)(path, "rb") as file:
            data = file.read()
    except (OSError, EOFError, zlib.error) as err:  # a bad gzip stream is an OSError or EOFError
        raise UserError(f"{path} could not be read as an IDX file ({err}). Download it again."
                        ) from err
    if len(data) < 4 or data[:2] != b"\0\0" or data[2] not in IDX_TYPES or data[3] == 0:
        raise UserError(f"{path} is not an IDX file: its magic number is 0x{data[:4].hex()}, "
                        "expected 0x0000 followed by a type byte (08 for unsigned bytes) and the "
                        "number of dimensions, e.g. 0x00000803 for MNIST images. Download it again.")
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise UserError(f"{path} is truncated: it ends inside its header ({len(data)} of "
                        f"{header} bytes). Download it again.")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    dtype = np.dtype(IDX_TYPES[data[2]])
    expected, actual = math.prod(dims) * dtype.itemsize, len(data) - header
    if actual != expected:
        state = "truncated" if actual < expected else "longer than its header says"
        raise UserError(f"{path} is {state}: its header declares dimensions {list(dims)} "
                        f"({expected:,} bytes of data) but the file holds {actual:,}. "
                        "Download it again.")
    return np.frombuffer(data, dtype, offset=header).reshape(dims).astype(dtype.newbyteorder("="))


def find_split_files(directory: Path, split: str) -> tuple[Path, Path] | None:
    """(images, labels) of a split in `directory`, gzipped or not; None when either is missing."""
    found = []
    for stem in SPLIT_FILES[split]:
        candidates = [directory / f"{stem}.gz", directory / stem]
        found.append(next((c for c in candidates if c.is_file()), None))
    return None if None in found else (found[0], found[1])


def read_split(images_path: Path, labels_path: Path, height: int, width: int,
               num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """(x uint8 NHWC, y int64) from an images/labels pair of IDX files, checked for consistency."""
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.dtype != np.uint8 or images.shape[1:] != (height, width):
        raise UserError(f"{images_path} holds {images.dtype} data of shape {images.shape}; "
                        f"expected unsigned bytes of shape (N, {height}, {width}).")
    if labels.ndim != 1 or len(labels) != len(images) or (labels.size and labels.max() >= num_classes):
        raise UserError(f"{labels_path} does not match {images_path.name}: expected "
                        f"{len(images):,} labels in 0..{num_classes - 1}, found shape {labels.shape}.")
    return images[..., None], labels.astype(np.int64)


def read_idx_dir(directory: Path, height: int, width: int, num_classes: int
                 ) -> dict[str, tuple[np.ndarray, np.ndarray]] | None:
    """Both splits from a directory holding the four standard files; None when one is missing."""
    pairs = {split: find_split_files(directory, split) for split in SPLIT_FILES}
    if None in pairs.values():
        return None
    return {split: read_split(*pair, height, width, num_classes) for split, pair in pairs.items()}
