"""Images as ganctl stores them: the file types it reads, [-1, 1] floats to uint8, grids and
2-D scatter plots (the same writers serve training snapshots and `sample`)."""
from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from ganctl.errors import UserError


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


def find_images(root: Path) -> list[Path]:
    """Every image file under `root` (any letter case of IMAGE_SUFFIXES), sorted by path."""
    return sorted((Path(folder, name) for folder, _, names in os.walk(root) for name in names
                   if name.lower().endswith(IMAGE_SUFFIXES)),
                  key=lambda p: p.relative_to(root).as_posix())


def save_png(pixels: np.ndarray, path: Path) -> None:
    """One uint8 HWC image (C = 1 or 3) as a PNG file."""
    Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels).save(path)


def check_images(batch: np.ndarray, where: str = "images", points_too: bool = False) -> np.ndarray:
    """A uint8 NHWC batch (NHW gets a channel axis), or a UserError naming what was wrong.
    points_too: the caller also takes float 2-D points, so the message offers them."""
    if batch.dtype != np.uint8:
        points = ", or float points of shape (N, 2)" if points_too else ""
        raise UserError(f"{where} have dtype {batch.dtype} and shape {batch.shape}; expected uint8 "
                        f"images (values 0..255) of shape (N, H, W) or (N, H, W, C){points}. "
                        "Convert images in [-1, 1] with "
                        "((x + 1) * 127.5).round().clip(0, 255).astype('uint8').")
    if batch.ndim == 3:
        batch = batch[..., None]
    if batch.ndim != 4 or batch.shape[-1] not in (1, 3):
        raise UserError(f"{where} have shape {batch.shape}; expected (N, H, W) or (N, H, W, C) "
                        "with C = 1 (grayscale) or 3 (RGB).")
    return batch


def to_uint8(images: np.ndarray) -> np.ndarray:
    """[-1, 1] float images -> uint8 [0, 255], rounding to nearest."""
    return np.clip(np.rint((np.asarray(images, np.float32) + 1.0) * 127.5), 0, 255).astype(np.uint8)


def image_grid(images: np.ndarray, columns: int | None = None, padding: int = 2) -> Image.Image:
    """Tile N images (NHWC, [-1, 1]) into one picture, roughly square."""
    pixels = to_uint8(images)
    n, h, w, c = pixels.shape
    columns = columns or snapshot_columns(n)
    rows = math.ceil(n / columns)
    canvas = np.full((rows * (h + padding) + padding, columns * (w + padding) + padding, c),
                     255, np.uint8)
    for i, image in enumerate(pixels):
        top, left = padding + (i // columns) * (h + padding), padding + (i % columns) * (w + padding)
        canvas[top:top + h, left:left + w] = image
    return Image.fromarray(canvas[..., 0] if c == 1 else canvas)


def snapshot_columns(n: int) -> int:
    """Columns of a roughly square grid of n images."""
    return math.ceil(math.sqrt(n))


def scatter_plot(fake_points: np.ndarray, real_points: np.ndarray | None = None,
                 size: int = 512) -> Image.Image:
    """Points in the data's own coordinates: real in grey, generated in red, on shared axes."""
    every = np.concatenate([p for p in (fake_points, real_points) if p is not None], 0)
    finite = every[np.isfinite(every).all(1)]
    low, high = (finite.min(0), finite.max(0)) if len(finite) else (np.array([-1, -1]), np.array([1, 1]))
    span = max(float((high - low).max()), 1e-6) * 1.1
    centre = (high + low) / 2

    def to_canvas(points):
        xy = (points - centre) / span * (size - 20) + size / 2
        return [(float(x), float(size - y)) for x, y in xy if np.isfinite(x) and np.isfinite(y)]

    picture = Image.new("RGB", (size, size), "white")
    draw = ImageDraw.Draw(picture)
    for points, colour in ((real_points, (170, 170, 170)), (fake_points, (200, 30, 30))):
        if points is not None:
            for x, y in to_canvas(points):
                draw.ellipse((x - 1.5, y - 1.5, x + 1.5, y + 1.5), fill=colour)
    return picture


def save_snapshot(samples: np.ndarray, path: Path, real_points: np.ndarray | None = None) -> Path:
    """A grid for images, a scatter plot for 2-D points."""
    path.parent.mkdir(parents=True, exist_ok=True)
    picture = scatter_plot(samples, real_points) if samples.ndim == 2 else image_grid(samples)
    picture.save(path)
    return path
