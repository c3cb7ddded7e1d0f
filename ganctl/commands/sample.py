"""`ganctl sample run=<run dir>`: grids, PNG folders, npz arrays, a latent-walk GIF, or (for a
class-conditional run) a labelled synthetic dataset."""
from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from ganctl import rundir
from ganctl.errors import UserError
from ganctl.images import image_grid, save_png, save_snapshot, scatter_plot, to_uint8

log = logging.getLogger("ganctl")


def run(cfg: DictConfig, _hydra_dir: Path | None = None) -> Path:
    run_dir = rundir.check_run_dir(cfg.run)
    if rundir.load_run_config(run_dir).model.get("translation") is not None:
        return translate_run(cfg, run_dir)
    if cfg.input is not None:
        raise UserError(f"input={cfg.input} translates real images, which only an image-to-image "
                        f"run does (model=pix2pix); run={cfg.run} generates images from noise. "
                        "Leave input= out to sample it.")
    fmt = "gif" if cfg.interpolate else cfg.format
    out = Path(cfg.out) if cfg.out else None
    if out is not None:
        _check_writable(out, fmt)
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    from ganctl.core.generators import (generate, latent_dim, load_generator, sample_labels)
    from ganctl.models.common import is_conditional

    generator, dataset, step = load_generator(run_dir, cfg.checkpoint, cfg.ema)
    z_dim = latent_dim(generator)
    conditional = is_conditional(generator)
    if not conditional and (cfg.labels is not None or cfg.per_class is not None
                            or fmt == "dataset"):
        _refuse_unconditional(cfg, fmt, run_dir, dataset)
    rng = np.random.default_rng(cfg.seed)
    stem = request_stem(cfg, step)
    default_dir = run_dir / rundir.SAMPLES_DIR
    points = dataset.kind == "points"
    labels, columns = (sample_labels(cfg.num, dataset.num_classes, cfg.labels, cfg.per_class,
                                     grid=fmt == "grid") if conditional else (None, None))
    count = len(labels) if labels is not None else cfg.num

    if fmt == "gif":
        out = out or _new_path(default_dir / f"walk_{stem}.gif")
        frames = _latent_walk(generator, rng, z_dim, count, cfg.frames, generate, labels)
        real = dataset.arrays("train", limit=2000)[0] if points else None
        pictures = [scatter_plot(f, real) if points else image_grid(f) for f in frames]
        out.parent.mkdir(parents=True, exist_ok=True)
        pictures[0].save(out, save_all=True, append_images=pictures[1:], duration=80, loop=0)
    elif fmt == "grid" and columns:
        # Class by row: column j shares one z across the rows, so a column shows one "style" in
        # every class and a row how the class varies.
        z = np.tile(rng.standard_normal((columns, z_dim)).astype(np.float32), (count // columns, 1))
        out = out or _new_path(default_dir / f"grid_{stem}.png")
        out.parent.mkdir(parents=True, exist_ok=True)
        image_grid(generate(generator, z, labels), columns=columns).save(out)
    else:
        samples = generate(generator, rng.standard_normal((count, z_dim)).astype(np.float32),
                           labels)
        if fmt == "dataset":
            out = out or _new_path(default_dir / f"dataset_{stem}")
            _check_writable(out, fmt)   # the default folder too: never write into older output
            write_labelled_dataset(out, to_uint8(samples), labels, dataset.class_names)
        elif fmt == "npz":
            out = out or _new_path(default_dir / f"samples_{stem}.npz")
            out.parent.mkdir(parents=True, exist_ok=True)
            if points:
                np.savez_compressed(out, points=samples.astype(np.float32))
            else:
                pixels = to_uint8(samples)
                arrays = {"images": pixels[..., 0] if pixels.shape[-1] == 1 else pixels}
                if labels is not None:
                    arrays["labels"] = labels.astype(np.int64)
                np.savez_compressed(out, **arrays)
        elif fmt == "png" and not points:
            out = out or _new_path(default_dir / f"png_{stem}")
            out.mkdir(parents=True, exist_ok=True)
            names = _folder_names(dataset.class_names) if labels is not None else None
            for i, pixels in enumerate(to_uint8(samples)):
                suffix = f"_{names[labels[i]]}" if names else ""
                save_png(pixels, out / f"{i:06d}{suffix}.png")
        else:  # grid, and png for 2-D points: a scatter plot over the real distribution
            out = out or _new_path(default_dir / f"grid_{stem}.png")
            real = dataset.arrays("train", limit=2000)[0] if points else None
            save_snapshot(samples, out, real_points=real)
            if points:
                np.savez_compressed(out.with_suffix(".npz"), points=samples.astype(np.float32))
    what = f"{count} samples" + (f" of classes {_describe(labels)}" if labels is not None else "")
    print(f"wrote {out}  ({what}, step {step}, {'EMA' if cfg.ema else 'raw'} G)")
    return out


def translate_run(cfg: DictConfig, run_dir: Path) -> Path:
    """A translation run: input= (an image or a folder) translated into the folder out=, each
    file under its own name as PNG; without input=, a comparison grid of up to `num` test pairs,
    one row each: input | output | target."""
    noise_only = [f"{key}={cfg[key]}" for key, off in (
        ("interpolate", False), ("labels", None), ("per_class", None)) if cfg[key] != off]
    if noise_only or cfg.format not in ("grid", "png"):
        asked = ", ".join(noise_only or [f"format={cfg.format}"])
        raise UserError(f"{asked} samples a noise -> image run; this run translates images "
                        "(model=pix2pix). Give input=<image or folder> out=<folder>, or leave "
                        "them out for a grid of the test split.")
    sources = _translation_inputs(Path(str(cfg.input)).expanduser()) if cfg.input else None
    out = Path(cfg.out).expanduser() if cfg.out else None
    if sources is not None and out is not None and out.exists() and not out.is_dir():
        raise UserError(f"out={out} is a file; with input= the translated images go into a "
                        "folder, one PNG per input. Give a folder name.")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    from ganctl.core.translation import (comparison_rows, load_translator, size_multiple,
                                         translate)

    generator, dataset, step = load_translator(run_dir, cfg.checkpoint, cfg.ema, cfg.direction)
    stem = f"step{step:06d}_{cfg.direction}" + ("" if cfg.ema else "_raw")
    default_dir = run_dir / rundir.SAMPLES_DIR
    if sources is None:
        a, b = dataset.pairs("test", limit=cfg.num)
        inputs, targets = (a, b) if cfg.direction == "AtoB" else (b, a)
        out = out or _new_path(default_dir / f"translation_{stem}.png")
        if out.is_dir():
            raise UserError(f"out={out} is a folder; the comparison grid is one PNG file. Give "
                            f"a file name such as {out / 'grid.png'}.")
        out.parent.mkdir(parents=True, exist_ok=True)
        rows = comparison_rows(generator, inputs, targets if dataset.paired else None)
        image_grid(rows, columns=3 if dataset.paired else 2).save(out)
        print(f"wrote {out}  ({len(inputs)} test images: input | output"
              f"{' | target' if dataset.paired else ''}, step {step})")
        return out
    root, files = sources
    out = out or _new_path(default_dir / f"translated_{stem}")
    targets = {path: out / (path.relative_to(root).with_suffix(".png") if root else
                            Path(path.stem + ".png")) for path in files}
    existing = [t for t in targets.values() if t.exists()]
    if existing and not cfg.overwrite:
        raise UserError(f"out={out} already holds {existing[0].name}"
                        f"{f' and {len(existing) - 1} more' if len(existing) > 1 else ''}, which "
                        "translating would replace. Give a new folder, or add overwrite=true.")
    multiple, channels = size_multiple(generator), dataset.channels
    for path, target in targets.items():
        pixels = _read_input(path, channels, multiple)
        target.parent.mkdir(parents=True, exist_ok=True)
        save_png(to_uint8(translate(generator, pixels[None]))[0], target)
    print(f"wrote {out}  ({len(files)} translated image(s), {cfg.direction}, step {step})")
    return out


def _translation_inputs(path: Path) -> tuple[Path | None, list[Path]]:
    """(folder or None, the image files) input= names: one image, or every image in a folder."""
    from ganctl.images import IMAGE_SUFFIXES, find_images

    if path.is_file():
        if not path.name.lower().endswith(IMAGE_SUFFIXES):
            raise UserError(f"input={path} is not an image file ({', '.join(IMAGE_SUFFIXES)}).")
        return None, [path]
    if not path.is_dir():
        raise UserError(f"input={path} does not exist. Give an image file or a folder of images.")
    files = find_images(path)
    if not files:
        raise UserError(f"input={path} holds no images ({', '.join(IMAGE_SUFFIXES)}).")
    return path, files


def _read_input(path: Path, channels: int, multiple: int) -> np.ndarray:
    """One image as uint8 HWC with the run's channels; a UserError for a size G cannot take."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            pixels = np.asarray(image.convert("L" if channels == 1 else "RGB"))
    except OSError as err:
        raise UserError(f"input file {path} is not a readable image ({err}).") from None
    pixels = pixels[..., None] if pixels.ndim == 2 else pixels
    height, width = pixels.shape[:2]
    if height % multiple or width % multiple:
        raise UserError(f"input file {path} is {width}x{height}; this run's generator takes "
                        f"images whose width and height are multiples of {multiple} (e.g. "
                        f"{max(multiple, width // multiple * multiple)}x"
                        f"{max(multiple, height // multiple * multiple)}). Resize or crop it.")
    return pixels


def request_stem(cfg: DictConfig, step: int) -> str:
    """A file name that differs whenever the request does: step, seed, count, classes, EMA."""
    parts = [f"step{step:06d}", f"seed{cfg.seed}",
             f"per_class{cfg.per_class}" if cfg.per_class is not None else f"num{cfg.num}"]
    if cfg.labels is not None:
        parts.append("labels" + "-".join(str(c) for c in cfg.labels))
    if cfg.interpolate:
        parts.append(f"frames{cfg.frames}")
    return "_".join(parts) + ("" if cfg.ema else "_raw")


def _new_path(path: Path) -> Path:
    """`path`, or path_2, path_3, ... when it exists: a default name never replaces older output."""
    if not path.exists():
        return path
    number = 2
    while (candidate := path.with_name(f"{path.stem}_{number}{path.suffix}")).exists():
        number += 1
    return candidate


def write_labelled_dataset(out: Path, images: np.ndarray, labels: np.ndarray,
                           class_names: tuple[str, ...]) -> None:
    """format=dataset: <out>/<class name>/<index>.png, or an npz (images uint8 NHWC, labels
    int64, class_names) when `out` ends in .npz. Both read back as a classifier's training set."""
    if out.suffix == ".npz":
        out.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(out, images=images, labels=labels.astype(np.int64),
                            class_names=np.asarray(class_names, dtype=str))
        return
    names = _folder_names(class_names)
    for label in np.unique(labels):
        (out / names[label]).mkdir(parents=True, exist_ok=True)
    for i, (pixels, label) in enumerate(zip(images, labels, strict=True)):
        save_png(pixels, out / names[label] / f"{i:06d}.png")


def _refuse_unconditional(cfg: DictConfig, fmt: str, run_dir: Path, dataset) -> None:
    from ganctl.core.generators import conditional_models, model_name

    asked = ", ".join(setting for setting, given in (
        (f"labels={list(cfg.labels or [])}", cfg.labels is not None),
        (f"per_class={cfg.per_class}", cfg.per_class is not None),
        ("format=dataset", fmt == "dataset")) if given)
    model = model_name(rundir.load_run_config(run_dir).model)
    choices = ", ".join(f"model={m}" for m in conditional_models(dataset)) or "none shipped"
    raise UserError(f"{asked} needs a class-conditional run, but this run's model is "
                    f"unconditional (model={model}): it draws images without classes. "
                    f"Class-conditional choices: {choices} (on labelled data such as "
                    "dataset=mnist). For unlabelled samples use format=png or format=npz.")


def _folder_names(class_names: tuple[str, ...]) -> list[str]:
    """Class names usable as one folder name each; a name that is not becomes its number."""
    return [name if name and name not in (".", "..") and "/" not in name and "\\" not in name
            else str(i) for i, name in enumerate(class_names)]


def _describe(labels: np.ndarray) -> str:
    classes = list(dict.fromkeys(int(c) for c in labels))
    return ", ".join(map(str, classes)) if len(classes) <= 12 else f"0..{max(classes)}"


def _latent_walk(generator, rng, z_dim: int, walks: int, frames: int, generate,
                 labels: np.ndarray | None = None) -> list:
    """Frames of spherical interpolation through a loop of random latent points; a conditional
    generator keeps each walk's class fixed."""
    keypoints = rng.standard_normal((4, walks, z_dim)).astype(np.float32)
    keypoints = np.concatenate([keypoints, keypoints[:1]], 0)
    per_leg = max(1, frames // 4)
    result = []
    for a, b in zip(keypoints[:-1], keypoints[1:]):
        for t in np.linspace(0, 1, per_leg, endpoint=False):
            result.append(generate(generator, _slerp(a, b, t), labels))
    return result


def _slerp(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    cos = np.sum(a * b, -1, keepdims=True) / (np.linalg.norm(a, axis=-1, keepdims=True)
                                             * np.linalg.norm(b, axis=-1, keepdims=True))
    omega = np.arccos(np.clip(cos, -1, 1))
    sin = np.maximum(np.sin(omega), 1e-6)
    return (np.sin((1 - t) * omega) / sin * a + np.sin(t * omega) / sin * b).astype(np.float32)


def _check_writable(out: Path, fmt: str) -> None:
    for parent in out.parents:
        if parent.exists() and not parent.is_dir():
            raise UserError(f"out={out} is inside '{parent}', which is a file, not a directory.")
    if fmt == "dataset":
        _check_new_dataset(out)
        return
    if fmt == "png" and out.exists() and not out.is_dir():
        raise UserError(f"out={out} is a file; format=png writes a folder of PNG files there.")
    if fmt != "png" and out.is_dir():
        suffix = {"npz": "npz", "grid": "png", "gif": "gif"}[fmt]
        raise UserError(f"out={out} is a directory; format={fmt} writes one file. "
                        f"Give a file name such as {out / ('samples.' + suffix)}.")


def _check_new_dataset(out: Path) -> None:
    """format=dataset adds files a user will train on: never mix them into, or over, others."""
    if out.suffix == ".npz":
        if out.exists():
            raise UserError(f"out={out} already exists; format=dataset never overwrites a file. "
                            "Give a new file name, or delete the old file first.")
        return
    if out.exists() and not out.is_dir():
        raise UserError(f"out={out} is a file; format=dataset writes a folder with one "
                        "sub-folder of PNGs per class there (or give out=<name>.npz for one "
                        "array file).")
    if out.is_dir() and any(out.iterdir()):
        raise UserError(f"out={out} is a folder that is not empty; format=dataset writes only into "
                        "a new or empty folder, so that the synthetic set is never mixed with "
                        "other files. Give a new folder, e.g. out=" + str(out.with_name(
                            out.name + "_2")) + ".")
