"""Sets of samples as numpy arrays: read from .npz/.npy files or image folders, and checked.

Images are uint8 NHWC; 2-D points (ring, grid) are float64 (N, 2). No TensorFlow here.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ganctl.errors import UserError
from ganctl.images import IMAGE_SUFFIXES, check_images, find_images


def is_point_set(samples: np.ndarray) -> bool:
    """2-D float arrays are point sets (ring, grid); everything else is meant to be images."""
    samples = np.asarray(samples)
    return samples.ndim == 2 and samples.dtype.kind == "f"


def check_sample_set(samples: np.ndarray, which: str) -> np.ndarray:
    """uint8 NHWC images or float64 points, or a UserError saying what is wrong with `which`."""
    samples = np.asarray(samples)
    if len(samples) == 0:
        raise UserError(f"The {which} set is empty.")
    if is_point_set(samples):
        if not np.isfinite(samples).all():
            raise UserError(f"The {which} points contain NaN or infinite values.")
        return samples.astype(np.float64, copy=False)
    return check_images(samples, f"The {which} images", points_too=True)


def check_compatible(fake: np.ndarray, real: np.ndarray) -> None:
    """Fake and real must be the same kind of sample of the same size (counts may differ)."""
    if fake.shape[1:] != real.shape[1:] or fake.dtype.kind != real.dtype.kind:
        def describe(x):
            return (f"points of dimension {x.shape[1]}" if is_point_set(x)
                    else "images of size " + "x".join(map(str, x.shape[1:])))
        raise UserError(f"The fake and real sets do not match: fake are {describe(fake)}, real are "
                        f"{describe(real)}. Compare samples of the same size and channels (resize "
                        "one set, e.g. with dataset=folder dataset.resolution=<size>).")


def load_image_set(path: str | Path, limit: int | None = None) -> np.ndarray:
    """An .npz/.npy file or a folder of images as uint8 NHWC (or float64 (N, 2) points).

    .npz: the array 'images' (as `ganctl sample format=npz` writes), else 'points', else the
    first array. Folders are read recursively (png, jpg, jpeg, webp, bmp) in sorted order; all
    images must have one size. `limit` reads at most that many samples.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise UserError(f"{path} does not exist. Give an .npz file (uint8 images under the key "
                        "'images') or a folder of images.")
    if path.is_dir():
        samples = _read_image_folder(path, limit)
    elif path.suffix in (".npz", ".npy"):
        samples = _read_array_file(path)[:limit]
    else:
        raise UserError(f"{path} is neither an .npz/.npy file nor a folder of images.")
    return check_sample_set(samples, str(path))


def load_labels(path: str | Path, limit: int | None = None) -> np.ndarray | None:
    """The int labels saved next to an .npz's images under 'labels' (as `ganctl sample` writes
    for class-conditional runs), or None when there are none."""
    path = Path(path).expanduser()
    if path.suffix != ".npz" or not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as data:
        if "labels" not in data or "images" not in data:
            return None
        labels = data["labels"][:limit]
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise UserError(f"{path}: 'labels' must be one integer class per image, found "
                        f"{labels.dtype} of shape {labels.shape}.")
    return labels.astype(np.int64)


def _read_array_file(path: Path) -> np.ndarray:
    try:
        if path.suffix == ".npy":
            return np.load(path, allow_pickle=False)
        with np.load(path, allow_pickle=False) as data:
            keys = list(data.keys())
            if not keys:
                raise UserError(f"{path} holds no arrays.")
            key = next((k for k in ("images", "points") if k in keys), keys[0])
            return data[key]
    except (OSError, ValueError, EOFError) as err:
        raise UserError(f"{path} cannot be read as a numpy file ({err}).") from err


def _read_image_folder(folder: Path, limit: int | None) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    files = find_images(folder)[:limit]
    if not files:
        raise UserError(f"{folder} holds no images ({', '.join(IMAGE_SUFFIXES)}).")
    images, first_size = [], None
    for file in files:
        try:
            with Image.open(file) as image:
                grayscale = image.mode in ("1", "L", "I", "I;16", "F")
                array = np.asarray(image.convert("L" if grayscale else "RGB"))
        except (OSError, UnidentifiedImageError) as err:
            raise UserError(f"{file} cannot be read as an image ({err}).") from err
        if first_size is None:
            first_size = (array.shape[:2], files[0])
        elif array.shape[:2] != first_size[0]:
            raise UserError(f"Images in {folder} differ in size: {first_size[1]} is "
                            f"{first_size[0][1]}x{first_size[0][0]} but {file} is "
                            f"{array.shape[1]}x{array.shape[0]}. Use one size for the whole set.")
        images.append(array[..., None] if array.ndim == 2 else array)
    if any(image.shape[-1] == 3 for image in images):
        # A mostly-RGB folder with a few grayscale files: treat them all as RGB.
        images = [np.repeat(image, 3, axis=-1) if image.shape[-1] == 1 else image
                  for image in images]
    return np.stack(images)
