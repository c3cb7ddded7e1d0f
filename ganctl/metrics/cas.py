"""Classification Accuracy Score (Ravuri & Vinyals 2019) and class match, for conditional GANs.

CAS trains a classifier on generated images only, labelled with the classes they were generated
for, and reports its accuracy on the real test split. `cas_real` is the same classifier with the
same number of examples per class and the same epochs, trained on real training images: the
score a perfect generator would approach. A generator that ignores its labels scores chance
(1/K); one that draws only a few easy images per class scores well below `cas_real`, which is
what FID/IS miss. The classifier and its training are ganctl's feature classifier
(`features.fit_classifier`): a small CNN, trained for `epochs` (default 3; eval.cas_epochs), far
shorter than the paper's ResNet training, so compare `cas` with `cas_real`, not with the paper.

`class_match` is the share of generated images that the pre-trained real-data classifier (the
`classifier` feature extractor) assigns to the class they were generated for.
No TensorFlow at import: `fit_classifier` imports Keras when it runs.
"""
from __future__ import annotations

import dataclasses
import hashlib

import numpy as np

from ganctl.errors import UserError

DEFAULT_EPOCHS = 3


@dataclasses.dataclass
class LabelledData:
    """A labelled dataset's real train and test splits as uint8 NHWC images and int64 labels."""

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    num_classes: int
    source: str = ""

    @classmethod
    def from_dataset(cls, dataset) -> LabelledData:
        if getattr(dataset, "kind", "image") != "image" or not getattr(dataset, "num_classes", 0):
            raise UserError("Metric 'cas' trains an image classifier on the dataset's classes, but "
                            "this dataset has no labelled images.")
        train, test = dataset.arrays("train"), dataset.arrays("test")
        return cls(*(np.asarray(a) for a in (*train, *test)), int(dataset.num_classes),
                   getattr(dataset, "source", ""))


def classification_accuracy_score(fake_images: np.ndarray, fake_classes: np.ndarray,
                                  real: LabelledData, epochs: int = DEFAULT_EPOCHS,
                                  seed: int = 0) -> tuple[dict[str, float], dict, list[str]]:
    """({"cas", "cas_real"}, provenance, notes) for uint8 NHWC fakes generated for fake_classes."""
    from ganctl.metrics.features import classifier_accuracy, fit_classifier

    fake_images, fake_classes = _check(fake_images, fake_classes, real)
    shape, classes = tuple(real.train_images.shape[1:]), real.num_classes
    model = fit_classifier(fake_images, fake_classes, shape, classes, epochs, seed)
    cas = classifier_accuracy(model, real.test_images, real.test_labels)

    # The real baseline: as many images, of each class as many as the fakes had where it can.
    wanted = np.bincount(fake_classes, minlength=classes)
    picks = balanced_subset(real.train_labels, wanted, np.random.default_rng(seed))
    model = fit_classifier(real.train_images[picks], real.train_labels[picks], shape, classes,
                           epochs, seed)
    cas_real = classifier_accuracy(model, real.test_images, real.test_labels)

    notes = []
    if len(picks) < len(fake_classes):
        notes.append(f"cas_real was trained on {len(picks)} real images, fewer than the "
                     f"{len(fake_classes)} generated ones: that is all the training split has.")
    shared = shared_fraction(real.train_images, real.test_images)
    if shared > 0:
        notes.append(f"{shared:.0%} of the real test images are also in the training split "
                     f"({real.source or 'the dataset'}): cas_real is measured partly on images "
                     "it was trained on, and the generator may have seen the test images, so "
                     "both accuracies are optimistic. Use a dataset with a separate test split "
                     "(e.g. the full MNIST via dataset.path) for numbers to report.")
    provenance = {"epochs": int(epochs), "classifier": "ganctl feature classifier (small CNN)",
                  "train_fake": len(fake_classes), "train_real": len(picks),
                  "test_real": len(real.test_labels), "num_classes": classes,
                  "chance": round(1 / classes, 4), "seed": int(seed)}
    return {"cas": cas, "cas_real": cas_real}, provenance, notes


def class_match(predicted: np.ndarray, requested: np.ndarray) -> float:
    """Share of samples whose predicted class is the one they were generated for."""
    predicted, requested = np.asarray(predicted), np.asarray(requested)
    if predicted.shape != requested.shape:
        raise ValueError(f"class_match: {predicted.shape} predictions for {requested.shape} labels")
    return float(np.mean(predicted == requested))


def balanced_subset(labels: np.ndarray, wanted: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Sorted indices of a seeded random pick of wanted[c] examples of each class c.

    A class with fewer examples gives all it has and the shortfall is filled from the other
    classes, so the total is sum(wanted) whenever there are that many (MNIST's classes differ
    by up to 20%: balanced 1,000 per class would otherwise leave cas_real a few % short).
    """
    order = rng.permutation(len(labels))
    shuffled = labels[order]
    picks = np.concatenate([order[shuffled == c][:count] for c, count in enumerate(wanted)]
                           + [np.zeros(0, np.int64)])
    missing = int(np.sum(wanted)) - len(picks)
    if missing > 0:
        rest = order[~np.isin(order, picks)]
        picks = np.concatenate([picks, rest[:missing]])
    return np.sort(picks)


def shared_fraction(train_images: np.ndarray, test_images: np.ndarray) -> float:
    """Share of test images that are byte-identical to some training image.

    Offline, ganctl's bundled MNIST is one 10,000-image split used as both train and test; this
    finds that (and any other overlap) from the data itself rather than from its description.
    """
    def digests(images):
        return [hashlib.blake2b(np.ascontiguousarray(image).tobytes(), digest_size=16).digest()
                for image in images]

    train = set(digests(train_images))
    return float(np.mean([d in train for d in digests(test_images)])) if len(test_images) else 0.0


def _check(fake_images, fake_classes, real: LabelledData) -> tuple[np.ndarray, np.ndarray]:
    fake_images, fake_classes = np.asarray(fake_images), np.asarray(fake_classes)
    if fake_images.dtype != np.uint8 or fake_images.ndim != 4:
        raise ValueError(f"cas: fake images must be uint8 NHWC, got {fake_images.dtype} "
                         f"{fake_images.shape}")
    if fake_images.shape[1:] != real.train_images.shape[1:]:
        raise UserError(f"Metric 'cas' tests on the real images, which are "
                        f"{'x'.join(map(str, real.train_images.shape[1:]))}, but the generated "
                        f"ones are {'x'.join(map(str, fake_images.shape[1:]))}.")
    if fake_classes.shape != (len(fake_images),):
        raise UserError(f"Metric 'cas' needs one label per generated image: got "
                        f"{fake_classes.shape[0] if fake_classes.ndim else 0} labels for "
                        f"{len(fake_images)} images.")
    if fake_classes.dtype.kind not in "iu" or fake_classes.min() < 0 \
            or fake_classes.max() >= real.num_classes:
        raise UserError(f"Metric 'cas': the generated images' labels must be class numbers in "
                        f"0..{real.num_classes - 1}, found values from {fake_classes.min()} to "
                        f"{fake_classes.max()} (dtype {fake_classes.dtype}).")
    return fake_images, fake_classes.astype(np.int64)
