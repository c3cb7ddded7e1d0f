"""Feature extractors: images -> features (and class probabilities) for the metrics.

One module per extractor: `pixels` (downsampled pixels; the identity for 2-D points),
`classifier` (ganctl's own cached CNN per dataset) and `inception` (Keras InceptionV3 at 299x299);
`base` holds what they share and the input convention. Which dataset has a classifier, and what
it learns from, is asked of the dataset (`classifier_key`, `classifier_training_set`), never
looked up by name. Nothing here imports TensorFlow until an extractor is built.
"""
from __future__ import annotations

from ganctl.errors import UserError
from ganctl.metrics.features.base import (
    Extracted,
    FeatureExtractor,
    inference_function,
    iter_batches,
)
from ganctl.metrics.features.classifier import (
    CLASSIFIER_ARCHITECTURE,
    ClassifierExtractor,
    build_classifier,
    cache_dir,
    classifier_accuracy,
    classifier_paths,
    datasets_with_classifier,
    fit_classifier,
    load_or_train_classifier,
)
from ganctl.metrics.features.inception import (
    INCEPTION_NOTOP_FILE,
    INCEPTION_NOTOP_MD5,
    INCEPTION_ORIGIN,
    INCEPTION_SIZE,
    INCEPTION_TOP_FILE,
    InceptionExtractor,
    resolve_inception_weights,
)
from ganctl.metrics.features.pixels import PixelExtractor

__all__ = [
    "CLASSIFIER_ARCHITECTURE", "EXTRACTORS", "INCEPTION_NOTOP_FILE", "INCEPTION_NOTOP_MD5",
    "INCEPTION_ORIGIN", "INCEPTION_SIZE", "INCEPTION_TOP_FILE", "ClassifierExtractor", "Extracted",
    "FeatureExtractor", "InceptionExtractor", "PixelExtractor", "build_classifier",
    "build_extractor", "cache_dir", "classifier_accuracy", "classifier_paths",
    "datasets_with_classifier", "fit_classifier", "inference_function", "iter_batches",
    "load_or_train_classifier", "resolve_inception_weights",
]

EXTRACTORS = ("auto", "classifier", "inception", "pixels")


def build_extractor(name: str, *, dataset=None, dataset_name: str | None = None,
                    points: bool = False, inception_weights: str | None = None,
                    classifier_epochs: int = 2,
                    progress: bool = False) -> FeatureExtractor:
    """The extractor called `name` (auto | classifier | inception | pixels).

    auto: pixels (identity) for 2-D points, the classifier when the dataset has one (its
    `classifier_key`), inception otherwise. The classifier learns the dataset's
    `classifier_training_set()` (for stacked_mnist, its MNIST digits). `dataset_name` only
    names the dataset in error messages.
    """
    if name not in EXTRACTORS:
        raise UserError(f"features={name} is not a feature extractor; choose one of "
                        f"{', '.join(EXTRACTORS)}.")
    # Duck-typed: any object with the Dataset attributes will do (tests pass small fakes).
    classifier_key = getattr(dataset, "classifier_key", None)
    if name == "auto":
        name = "pixels" if points else "classifier" if classifier_key else "inception"
    if name == "pixels":
        return PixelExtractor()
    if points:
        raise UserError(f"features={name} works on images, but this set is 2-D points; use "
                        "features=pixels (or auto), which scores the points themselves.")
    if name == "inception":
        return InceptionExtractor(inception_weights)
    if not classifier_key:
        raise UserError(f"features=classifier needs one of the labelled datasets "
                        f"{', '.join(datasets_with_classifier())} to train on, but the dataset is "
                        f"{dataset_name or 'not known'}. Use features=inception or "
                        "features=pixels.")
    return ClassifierExtractor(dataset.classifier_training_set(), classifier_key,
                               classifier_epochs, progress=progress)
