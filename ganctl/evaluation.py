"""Score generated samples against real ones: load the sets, extract features once, run metrics.

`ganctl eval` (and the in-training evaluation) call `evaluate`; it takes plain numpy arrays so any
source of samples works: a checkpoint, an .npz from another tool, a folder of images.
No TensorFlow here: only the extractor passed in uses it.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ganctl.errors import UserError
from ganctl.metrics import registry

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
# MetricContext settings a caller may pass to evaluate(); the rest evaluate fills in itself.
METRIC_OPTIONS = ("kid_subsets", "kid_subset_size", "is_splits", "precision_recall_k",
                  "density_coverage_k", "mode_min_share", "cas_epochs")


def evaluate(fake: np.ndarray, real: np.ndarray | None, metric_names, extractor, *,
             modes: np.ndarray | None = None, mode_std: float | None = None,
             fake_classes: np.ndarray | None = None, labelled=None, seed: int = 0,
             batch_size: int = 250, progress: bool = False, **options) -> dict:
    """Metric values plus provenance, as a JSON-ready dict.

    fake/real: uint8 images (N, H, W) or (N, H, W, C), or float 2-D points (N, 2). real may be
    None when no chosen metric compares with real data (is, modes). modes/mode_std: the ring or
    grid dataset's `.modes` and `.std`. fake_classes: the class each fake was generated for
    (conditional generators; cas, class_match). labelled: the real train/test splits as a
    `metrics.cas.LabelledData` (cas). options: any of METRIC_OPTIONS.
    Returns {"metrics": {name: value}, "features": {extractor provenance, "dim"}, "num_fake",
    "num_real", "seed", "seconds": {"features", "metrics"}}, plus "provenance" (per-metric
    settings, e.g. cas's epochs) and "notes" (caveats) when a metric gives them.
    """
    names = registry.check_metric_names(metric_names)
    unknown = set(options) - set(METRIC_OPTIONS)
    if unknown:
        raise TypeError(f"evaluate: unknown options {sorted(unknown)}")
    registry.check_conditional(names, fake_classes is not None, "the fake set has no labels (an "
                               ".npz with 'labels' has them, as `ganctl sample` writes for a "
                               "conditional run)")
    if "class_match" in names and extractor.name != "classifier":
        registry.MetricContext(extractor=extractor.name).require("fake_labels", "class_match")
    if not extractor.gives_probs:
        # Fail before a possibly long feature extraction, with the same message as the metric.
        for name in names:
            if registry.METRICS[name].needs_probs:
                registry.MetricContext(extractor=extractor.name).require("fake_probs", name)
    points = is_point_set(fake)
    fake = check_sample_set(fake, "fake")
    if registry.needs_real(names):
        if real is None:
            needing = [n for n in names if registry.METRICS[n].needs_real]
            raise UserError(f"Metrics {', '.join(needing)} compare with real data, but no real set "
                            "was given. Give real=<npz, image folder or dataset name>, or choose "
                            "only metrics that need none (is, modes).")
        real = check_sample_set(real, "real")
        check_compatible(fake, real)
    else:
        real = None

    started = time.time()
    fake_extracted = extractor.extract(fake, batch_size=batch_size, progress=progress)
    real_extracted = (extractor.extract(real, batch_size=batch_size, progress=progress)
                      if real is not None else None)
    features_seconds = time.time() - started

    context = registry.MetricContext(
        fake_features=fake_extracted.features,
        real_features=real_extracted.features if real_extracted is not None else None,
        fake_probs=fake_extracted.probs,
        fake_labels=fake_extracted.labels,
        num_labels=fake_extracted.num_labels,
        fake_points=fake if points else None,
        mode_centres=None if modes is None else np.asarray(modes, np.float64),
        mode_std=mode_std,
        extractor=extractor.name,
        fake_images=None if points else fake,
        fake_classes=None if fake_classes is None else np.asarray(fake_classes, np.int64),
        labelled=labelled,
        seed=seed,
        **options,
    )
    started = time.time()
    metrics = registry.compute_metrics(names, context)
    result = {
        "metrics": metrics,
        "features": {**extractor.describe(), "dim": int(fake_extracted.features.shape[1])},
        "num_fake": len(fake),
        "num_real": len(real) if real is not None else 0,
        "seed": int(seed),
        "seconds": {"features": round(features_seconds, 2),
                    "metrics": round(time.time() - started, 2)},
    }
    if context.provenance:
        result["provenance"] = context.provenance
    if context.notes:
        result["notes"] = context.notes
    return result


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
    if samples.dtype != np.uint8:
        raise UserError(f"The {which} images have dtype {samples.dtype} and shape {samples.shape}; "
                        "expected uint8 images (values 0..255) of shape (N, H, W) or (N, H, W, C), "
                        "or float points of shape (N, 2). Convert images in [-1, 1] with "
                        "((x + 1) * 127.5).round().clip(0, 255).astype('uint8').")
    if samples.ndim == 3:
        samples = samples[..., None]
    if samples.ndim != 4 or samples.shape[-1] not in (1, 3):
        raise UserError(f"The {which} images have shape {samples.shape}; expected (N, H, W) or "
                        "(N, H, W, C) with C = 1 (grayscale) or 3 (RGB).")
    return samples


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

    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)[:limit]
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


# --- Scoring a generator (used by `ganctl eval run=...` and by train.eval_every) ------------------

LOWER_IS_BETTER = {"fid", "kid", "kid_std", "kl", "is_std"}


def auto_metrics(points: bool, extractor, conditional: bool = False) -> list[str]:
    """What a researcher comparing GANs reports by default for this kind of data.

    Samples generated for given classes also get CAS (and class_match with the real-data
    classifier): whether each class is there and recognisable, which FID cannot tell.
    """
    if points:
        return ["modes", "precision_recall"]
    # With a classifier, class coverage and its KL from uniform (1,000 modes for stacked_mnist).
    names = ["fid", "kid", "precision_recall", "density_coverage"] + (
        ["is", "modes"] if extractor.gives_probs else [])
    if conditional:
        names += ["cas"] + (["class_match"] if extractor.name == "classifier" else [])
    return names


def dataset_name(dataset_cfg) -> str:
    """The config choice (mnist, cifar10, ...): YAML stem = module name, ganctl's naming rule."""
    return str(dataset_cfg["_target_"]).split(".")[2]


def model_name(model_cfg) -> str:
    """The model choice (dcgan, cdcgan, ...) from its generator's target, by the same rule."""
    return str(model_cfg["generator"]["_target_"]).split(".")[2]


def score_generator(generator, dataset, name: str, metric_names, extractor, *, num: int,
                    seed: int = 0, split: str = "train", batch_size: int = 250,
                    cas_epochs: int | None = None, model_name: str = "") -> dict:
    """Generate `num` samples and score them against up to `num` real ones.

    A class-conditional generator draws the classes in turn (0, 1, ..., K-1, 0, ...), so every
    class gets num/K samples, as a balanced real set has. `model_name` names the run's model in
    the error for cas/class_match on an unconditional generator.
    """
    from ganctl.commands.sample import latent_dim, sample_labels
    from ganctl.metrics.cas import LabelledData
    from ganctl.models.common import is_conditional
    from ganctl.training.snapshots import to_uint8
    from ganctl.training.steps import generate

    conditional = is_conditional(generator)
    points = dataset.kind == "points"
    names = (auto_metrics(points, extractor, conditional)
             if list(metric_names) in (["auto"], []) else list(metric_names))
    if not conditional and any(registry.METRICS[n].needs_classes for n in names):
        from ganctl.commands.sample import conditional_models

        registry.check_conditional(names, conditional, "this run's model" + (
            f" (model={model_name})" if model_name else "") + " is unconditional: it draws no "
            "classes (class-conditional choices: "
            f"{', '.join('model=' + m for m in conditional_models(dataset)) or 'none'})")
    z = np.random.default_rng(seed).standard_normal((num, latent_dim(generator)))
    classes = sample_labels(num, dataset.num_classes)[0] if conditional else None
    fake = generate(generator, z.astype(np.float32), classes)
    needs_real = registry.needs_real(registry.check_metric_names(names))
    real = dataset.arrays(split, limit=num)[0] if needs_real else None
    labelled = LabelledData.from_dataset(dataset) if "cas" in names else None
    options = {} if cas_epochs is None else {"cas_epochs": cas_epochs}
    return evaluate(fake.astype(np.float64) if points else to_uint8(fake), real, names, extractor,
                    modes=getattr(dataset, "modes", None), mode_std=getattr(dataset, "std", None),
                    fake_classes=classes, labelled=labelled, seed=seed, batch_size=batch_size,
                    **options)


def headline(result: dict) -> tuple[str, float]:
    """(name, value) of the first metric value: what `best` checkpoints and sweeps sort by."""
    name, value = next(iter(result["metrics"].items()))
    return name, value
