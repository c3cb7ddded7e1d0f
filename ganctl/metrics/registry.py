"""Metric registry: each metric reads what it needs from a MetricContext and returns flat floats.

The pattern of stylegan2-ada's metric_main.py: a metric is a small function registered by name,
so adding one is one decorated function here and nothing else. Metric modules stay pure numpy;
this file is the only glue between them and the evaluation context. No TensorFlow here (`cas`
trains a classifier, importing Keras only when it runs).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable

import numpy as np

from ganctl.errors import UserError, did_you_mean
from ganctl.metrics import cas, fid, inception_score, kid, modes, precision_recall


@dataclasses.dataclass
class MetricContext:
    """Everything a metric may read. Fields a run cannot provide stay None."""

    fake_features: np.ndarray | None = None
    real_features: np.ndarray | None = None
    fake_probs: np.ndarray | None = None        # (N, classes): extractor's softmax, for IS
    fake_labels: np.ndarray | None = None       # (N,): predicted class (or Stacked MNIST number)
    num_labels: int = 0                         # how many distinct labels (10, or 1000 stacked)
    fake_points: np.ndarray | None = None       # (N, 2) raw generator output for ring / grid
    mode_centres: np.ndarray | None = None      # (K, 2) the mixture's modes
    mode_std: float | None = None
    extractor: str = ""                         # feature extractor name, for messages
    fake_images: np.ndarray | None = None       # uint8 NHWC generated images (cas trains on them)
    fake_classes: np.ndarray | None = None      # (N,): the class each fake was generated for
    labelled: cas.LabelledData | None = None    # real train/test images and labels (cas)
    seed: int = 0
    kid_subsets: int = 100
    kid_subset_size: int = 1000
    is_splits: int = 10
    precision_recall_k: int = 3
    density_coverage_k: int = 5
    mode_min_share: float = modes.DEFAULT_MIN_SHARE
    cas_epochs: int = cas.DEFAULT_EPOCHS
    # Filled in by metrics: settings and caveats recorded next to the values in metrics.json.
    provenance: dict = dataclasses.field(default_factory=dict)
    notes: list = dataclasses.field(default_factory=list)

    def require(self, field: str, metric: str):
        """The field's value, or a UserError saying which metric needed it and how to get it."""
        value = getattr(self, field)
        if value is None:
            hint = _MISSING_HINTS[field].format(extractor=self.extractor or "none")
            raise UserError(f"Metric '{metric}' cannot be computed: {hint}")
        return value


_MISSING_HINTS = {
    "fake_features": "there are no features of the generated samples.",
    "real_features": "it compares with real data, but no real set was given (real=<npz, image "
                     "folder or dataset name>).",
    "fake_probs": "it needs class probabilities, which the feature extractor {extractor!r} does "
                  "not give. Use features=classifier, or features=inception with the InceptionV3 "
                  "weights that include the top "
                  "(inception_v3_weights_tf_dim_ordering_tf_kernels.h5).",
    "fake_labels": "it needs class predictions, which only features=classifier gives.",
    "fake_classes": "it needs the class each sample was generated for, which only a "
                    "class-conditional generator (model=cdcgan) has, or an npz with 'labels' "
                    "(ganctl sample format=dataset out=<file>.npz).",
    "labelled": "it needs the real labelled train and test splits: give real=<dataset name> "
                "(mnist, fashion_mnist, cifar10, ...).",
    "fake_images": "there are no generated images.",
    "mode_centres": "it needs the modes of a 2-D mixture dataset (ring or grid).",
    "mode_std": "it needs the standard deviation of a 2-D mixture dataset (ring or grid).",
    "fake_points": "it needs 2-D points from a ring or grid generator.",
}


@dataclasses.dataclass(frozen=True)
class Metric:
    name: str
    compute: Callable[[MetricContext], dict[str, float]]
    needs_real: bool        # whether real features must be extracted for it
    needs_probs: bool       # whether it needs the extractor's class probabilities
    doc: str
    needs_classes: bool = False     # whether it needs the class each fake was generated for


METRICS: dict[str, Metric] = {}


def register_metric(name: str, needs_real: bool = False, needs_probs: bool = False,
                    needs_classes: bool = False):
    """Decorator: register `fn(context) -> dict[str, float]` under `name`."""
    def decorate(fn: Callable[[MetricContext], dict[str, float]]):
        if name in METRICS:
            raise ValueError(f"metric {name!r} is registered twice")
        doc = (fn.__doc__ or "").strip().split("\n")[0]
        METRICS[name] = Metric(name, fn, needs_real, needs_probs, doc, needs_classes)
        return fn
    return decorate


def check_metric_names(names: Iterable[str], key: str = "metrics") -> list[str]:
    """The names as a list, or a UserError naming the unknown one and listing the known ones."""
    names = list(names)
    if not names:
        raise UserError(f"{key}=[] chooses no metric. Set {key} to a list of: "
                        f"{', '.join(METRICS)}, e.g. {key}=[fid].")
    for name in names:
        if name not in METRICS:
            raise UserError(f"{key}=[{','.join(map(str, names))}]: {name!r} is not a metric."
                            f"{did_you_mean(name, METRICS)} Known metrics: "
                            f"{', '.join(METRICS)}.")
    return names


def needs_real(names: Iterable[str]) -> bool:
    """Whether any of these metrics compares with real data."""
    return any(METRICS[name].needs_real for name in check_metric_names(names))


def check_conditional(names: Iterable[str], conditional: bool, why: str) -> None:
    """UserError when a metric of conditional generators is asked of samples without classes.

    `why` says what lacks the classes, e.g. "this run's model (model=dcgan) is unconditional".
    """
    needing = [n for n in check_metric_names(names) if METRICS[n].needs_classes]
    if needing and not conditional:
        raise UserError(f"Metric{'s' if len(needing) > 1 else ''} {', '.join(needing)} "
                        f"measure{'' if len(needing) > 1 else 's'} whether samples show the class "
                        f"they were generated for, but {why}. Drop {', '.join(needing)} from "
                        "metrics, or score class-conditional samples.")


def compute_metrics(names: Iterable[str], context: MetricContext) -> dict[str, float]:
    """Run each named metric on the context; one flat dict of all their results, in order."""
    results: dict[str, float] = {}
    for name in check_metric_names(names):
        values = METRICS[name].compute(context)
        results.update({key: float(value) for key, value in values.items()})
    return results


def _features(context: MetricContext, metric: str) -> tuple[np.ndarray, np.ndarray]:
    return context.require("real_features", metric), context.require("fake_features", metric)


@register_metric("fid", needs_real=True)
def _fid(context: MetricContext) -> dict[str, float]:
    """Frechet distance between Gaussian fits of real and fake features (lower is better)."""
    real, fake = _features(context, "fid")
    return {"fid": fid.fid(real, fake, extractor=context.extractor)}


@register_metric("kid", needs_real=True)
def _kid(context: MetricContext) -> dict[str, float]:
    """Unbiased MMD^2, cubic kernel; mean and std over subsets (lower is better)."""
    real, fake = _features(context, "kid")
    mean, std = kid.kid(real, fake, context.kid_subsets, context.kid_subset_size, context.seed)
    return {"kid": mean, "kid_std": std}


@register_metric("precision_recall", needs_real=True)
def _precision_recall(context: MetricContext) -> dict[str, float]:
    """Improved precision (fidelity) and recall (diversity), k-NN manifolds with k=3."""
    real, fake = _features(context, "precision_recall")
    precision, recall = precision_recall.precision_recall(real, fake, context.precision_recall_k)
    return {"precision": precision, "recall": recall}


@register_metric("density_coverage", needs_real=True)
def _density_coverage(context: MetricContext) -> dict[str, float]:
    """Density and coverage of real k-NN balls (k=5); robust to outliers."""
    real, fake = _features(context, "density_coverage")
    density, coverage = precision_recall.density_coverage(real, fake, context.density_coverage_k)
    return {"density": density, "coverage": coverage}


@register_metric("is", needs_probs=True)
def _inception_score(context: MetricContext) -> dict[str, float]:
    """Inception Score from the extractor's class probabilities, over splits (higher is better)."""
    probs = context.require("fake_probs", "is")
    mean, std = inception_score.inception_score(probs, context.is_splits)
    return {"is": mean, "is_std": std}


@register_metric("modes")
def _modes(context: MetricContext) -> dict[str, float]:
    """Modes covered (+ high-quality share on ring/grid, KL from uniform) of a mode benchmark."""
    if context.fake_points is not None and context.mode_centres is not None:
        return modes.mixture_modes(context.fake_points, context.mode_centres,
                                   context.require("mode_std", "modes"), context.mode_min_share)
    if context.fake_labels is not None and context.num_labels:
        return modes.label_modes(context.fake_labels, context.num_labels)
    raise UserError("Metric 'modes' cannot be computed: it needs either 2-D points with the modes "
                    "of a ring or grid dataset, or class predictions from features=classifier "
                    "(on mnist, fashion_mnist, cifar10 or stacked_mnist).")


@register_metric("cas", needs_classes=True)
def _cas(context: MetricContext) -> dict[str, float]:
    """Classification Accuracy Score: real test accuracy of a classifier trained on fakes only."""
    values, provenance, notes = cas.classification_accuracy_score(
        context.require("fake_images", "cas"), context.require("fake_classes", "cas"),
        context.require("labelled", "cas"), context.cas_epochs, context.seed)
    context.provenance["cas"] = provenance
    context.notes.extend(notes)
    return values


@register_metric("class_match", needs_probs=True, needs_classes=True)
def _class_match(context: MetricContext) -> dict[str, float]:
    """Share of fakes the real-data classifier assigns to the class they were generated for."""
    requested = context.require("fake_classes", "class_match")
    if context.extractor != "classifier":
        raise UserError("Metric 'class_match' cannot be computed: it needs the predictions of "
                        "ganctl's classifier trained on the real data (features=classifier), "
                        f"but the features are {context.extractor!r}.")
    predicted = context.require("fake_labels", "class_match")
    if requested.max() >= context.num_labels:
        raise UserError(f"Metric 'class_match': the samples' classes go up to {requested.max()}, "
                        f"but the classifier knows {context.num_labels} classes.")
    return {"class_match": cas.class_match(predicted, requested)}
