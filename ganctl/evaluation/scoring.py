"""Score generated samples against real ones: load the sets, extract features once, run metrics.

`ganctl eval` (and the in-training evaluation) call `evaluate`; it takes plain numpy arrays so any
source of samples works: a checkpoint, an .npz from another tool, a folder of images.
No TensorFlow here: only the extractor passed in uses it.
"""
from __future__ import annotations

import time

import numpy as np

from ganctl.errors import UserError
from ganctl.evaluation.sets import check_compatible, check_sample_set, is_point_set
from ganctl.metrics import registry

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


# --- Scoring a generator (used by `ganctl eval run=...` and by train.eval_every) ------------------

LOWER_IS_BETTER = {"fid", "kid", "kid_std", "kl", "is_std", "l1", "cycle_l1"}


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


def score_generator(generator, dataset, name: str, metric_names, extractor, *, num: int,
                    seed: int = 0, split: str = "train", batch_size: int = 250,
                    cas_epochs: int | None = None, model_name: str = "") -> dict:
    """Generate `num` samples and score them against up to `num` real ones.

    A class-conditional generator draws the classes in turn (0, 1, ..., K-1, 0, ...), so every
    class gets num/K samples, as a balanced real set has. `model_name` names the run's model in
    the error for cas/class_match on an unconditional generator.
    """
    from ganctl.core.generators import conditional_models, generate, latent_dim, sample_labels
    from ganctl.images import to_uint8
    from ganctl.metrics.cas import LabelledData
    from ganctl.models.common import is_conditional

    conditional = is_conditional(generator)
    points = dataset.kind == "points"
    names = (auto_metrics(points, extractor, conditional)
             if list(metric_names) in (["auto"], []) else list(metric_names))
    if not conditional and any(registry.METRICS[n].needs_classes for n in names):
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
