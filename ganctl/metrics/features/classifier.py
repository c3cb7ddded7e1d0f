"""`classifier`: a small CNN ganctl trains once per dataset on its labelled training split and
caches (GANCTL_CACHE, else $XDG_CACHE_HOME/ganctl, else ~/.cache/ganctl).

Offline, fast, and sensitive on small images. Penultimate layer = features, softmax =
probabilities. Applied per channel to 3-channel images when trained on 1-channel ones (Stacked
MNIST: 1,000 classes). Which datasets have one, and what it learns from, the dataset classes say
(`classifier_key`, `classifier_training_set`).
"""
from __future__ import annotations

import json
import logging
import os
import re
import time
from pathlib import Path

import numpy as np

from ganctl.errors import UserError
from ganctl.images import check_images
from ganctl.metrics.features.base import Extracted, FeatureExtractor, inference_function

log = logging.getLogger("ganctl.metrics")

# Bump when build_classifier or its training changes: old cache files are then never used.
CLASSIFIER_ARCHITECTURE = "cnn-v1"


def cache_dir() -> Path:
    """GANCTL_CACHE, else $XDG_CACHE_HOME/ganctl, else ~/.cache/ganctl."""
    if os.environ.get("GANCTL_CACHE"):
        return Path(os.environ["GANCTL_CACHE"]).expanduser()
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]).expanduser() / "ganctl"
    return Path("~/.cache/ganctl").expanduser()


def build_classifier(image_shape: tuple[int, int, int], num_classes: int, seed: int = 0):
    """The small CNN: two conv+pool blocks, a 128-unit 'features' layer, softmax 'probs'.

    Seeded initialisers instead of keras.utils.set_random_seed, so training it inside a GAN run
    does not reset the run's global random state.
    """
    import keras
    from keras import layers

    def init(i):
        return keras.initializers.HeNormal(seed=seed + i)

    inputs = keras.Input(shape=image_shape, name="images")
    x = layers.Rescaling(1 / 127.5, offset=-1.0)(inputs)
    x = layers.Conv2D(32, 3, padding="same", activation="relu", kernel_initializer=init(1))(x)
    x = layers.MaxPooling2D()(x)
    x = layers.Conv2D(64, 3, padding="same", activation="relu", kernel_initializer=init(2))(x)
    x = layers.MaxPooling2D()(x)
    x = layers.Flatten()(x)
    features = layers.Dense(128, activation="relu", kernel_initializer=init(3), name="features")(x)
    x = layers.Dropout(0.3, seed=seed + 4)(features)
    outputs = layers.Dense(num_classes, activation="softmax", kernel_initializer=init(5),
                           name="probs")(x)
    return keras.Model(inputs, outputs, name=f"ganctl_classifier_{CLASSIFIER_ARCHITECTURE}")


def fit_classifier(images: np.ndarray, labels: np.ndarray, image_shape: tuple[int, int, int],
                   num_classes: int, epochs: int, seed: int = 0, progress: bool = False):
    """A new `build_classifier` CNN trained on uint8 images: Adam 1e-3, batch 128, `epochs` passes.

    The one training recipe for the cached feature classifier and for CAS (metrics/cas.py), so
    a CAS is measured with exactly the classifier whose features the other metrics use.
    """
    import keras

    model = build_classifier(image_shape, num_classes, seed)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    rng = np.random.default_rng(seed)
    for _ in range(epochs):
        # Our own seeded shuffle: fit's shuffle would draw from the global random state.
        order = rng.permutation(len(images))
        model.fit(images[order], labels[order], batch_size=128, epochs=1, shuffle=False,
                  verbose=1 if progress else 0)
    return model


def classifier_accuracy(model, images: np.ndarray, labels: np.ndarray) -> float:
    """Top-1 accuracy of a `build_classifier` model on uint8 images."""
    _, accuracy = model.evaluate(images, labels, batch_size=500, verbose=0)
    return float(accuracy)


class ClassifierExtractor(FeatureExtractor):
    """Features and probabilities from ganctl's own classifier cached as `dataset_name`.

    `dataset` is the labelled dataset object to train on (what a dataset's
    `classifier_training_set()` gives: for stacked_mnist, the MNIST digits); it is only read
    when no valid cached classifier exists.
    """

    name = "classifier"
    gives_probs = True

    def __init__(self, dataset, dataset_name: str, epochs: int = 2, train_limit: int | None = None,
                 seed: int = 0, progress: bool = False):
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", dataset_name):
            raise UserError(f"dataset name {dataset_name!r} cannot name a classifier cache file; "
                            "use letters, digits, '_', '-' or '.'.")
        self.dataset_name = dataset_name
        self.model, self.info = load_or_train_classifier(dataset, dataset_name, epochs, train_limit,
                                                          seed, progress)
        import keras
        self._features_and_probs = inference_function(keras.Model(
            self.model.inputs, [self.model.get_layer("features").output, self.model.output]))
        self.image_shape = tuple(self.model.input_shape[1:])
        self.num_classes = int(self.model.output_shape[-1])
        self.per_channel = False

    def _batch(self, batch):
        batch = check_images(batch)
        height, width, channels = self.image_shape
        if batch.shape[1:3] != (height, width):
            raise UserError(f"The classifier for {self.dataset_name} takes {height}x{width} "
                            f"images, but got {batch.shape[1]}x{batch.shape[2]}. Use images of the "
                            "dataset's size, or features=inception for other sizes.")
        if batch.shape[-1] == channels:
            features, probs = self._features_and_probs(batch)
            return features, probs
        if channels != 1:
            raise UserError(f"The classifier for {self.dataset_name} takes {channels}-channel "
                            f"images, but got {batch.shape[-1]} channels.")
        # Stacked MNIST: classify each channel as its own digit image, then join per image.
        n = len(batch)
        digits = np.moveaxis(batch, -1, 1).reshape(n * 3, height, width, 1)
        features, probs = self._features_and_probs(digits)
        features = features.reshape(n, -1)
        probs = probs.reshape(n, 3, -1)   # 3-D marks per-channel output
        return features, probs

    def _finish(self, features, probs):
        self.per_channel = probs.ndim == 3     # recorded for describe()
        if not self.per_channel:
            return super()._finish(features, probs)
        classes = probs.shape[-1]
        digits = probs.argmax(axis=2)
        labels = digits @ np.array([classes ** 2, classes, 1])
        # Channels are classified independently, so the joint probability is their product.
        joint = np.einsum("ni,nj,nk->nijk", probs[:, 0], probs[:, 1], probs[:, 2])
        return Extracted(features, joint.reshape(len(probs), -1), labels, classes ** 3)

    def describe(self):
        return {"name": self.name, **self.info, "per_channel": self.per_channel}


def classifier_paths(dataset_name: str) -> tuple[Path, Path]:
    """(model file, info json) in the cache, keyed by dataset and architecture version."""
    folder, stem = cache_dir() / "classifiers", f"{dataset_name}-{CLASSIFIER_ARCHITECTURE}"
    return folder / f"{stem}.keras", folder / f"{stem}.json"


def load_or_train_classifier(dataset, dataset_name: str, epochs: int = 2,
                             train_limit: int | None = None, seed: int = 0, progress: bool = False):
    """(model, info): the cached classifier if it loads and matches, else a newly trained one."""
    model_path, info_path = classifier_paths(dataset_name)
    if model_path.exists() or info_path.exists():
        try:
            return _load_classifier(model_path, info_path, dataset, train_limit)
        except Exception as err:  # noqa: BLE001  any damage means: do not trust it, rebuild it
            log.warning("The cached classifier %s is unusable (%s: %s); training a new one.",
                        model_path, type(err).__name__, err)
    return _train_classifier(dataset, dataset_name, model_path, info_path, epochs, train_limit,
                             seed, progress)


def _load_classifier(model_path: Path, info_path: Path, dataset, train_limit: int | None):
    import keras

    info = json.loads(info_path.read_text())
    if info.get("architecture") != CLASSIFIER_ARCHITECTURE:
        raise ValueError(f"architecture {info.get('architecture')!r}, expected "
                         f"{CLASSIFIER_ARCHITECTURE!r}")
    # Until Dec 2026 ganctl trained it on the evaluated run's dataset.limit share (2,000 images).
    wanted = len(dataset.arrays("train", limit=train_limit)[0])
    if info.get("train_size", wanted) < wanted:
        raise ValueError(f"it learnt {info['train_size']:,} training images of the {wanted:,} "
                         "there are (a run's dataset.limit), so it would score unlike the others")
    model = keras.models.load_model(model_path, compile=False, safe_mode=True)
    expected = (tuple(dataset.image_shape), int(dataset.num_classes))
    found = (tuple(model.input_shape[1:]), int(model.output_shape[-1]))
    if found != expected:
        raise ValueError(f"it takes {found[0]} images into {found[1]} classes, the dataset has "
                         f"{expected[0]} images in {expected[1]} classes")
    model.get_layer("features")
    return model, info


def _train_classifier(dataset, dataset_name, model_path, info_path, epochs, train_limit, seed,
                      progress):
    import keras

    if getattr(dataset, "kind", "image") != "image" or not getattr(dataset, "num_classes", 0):
        raise UserError(f"features=classifier needs a labelled image dataset to train on; "
                        f"{dataset_name} has no labels. Use features=inception or features=pixels.")
    started = time.time()
    x_train, y_train = dataset.arrays("train", limit=train_limit)
    x_test, y_test = dataset.arrays("test")
    log.warning("Training ganctl's %s classifier for %s on %d images (%d epochs; done once, then "
                "cached in %s).", CLASSIFIER_ARCHITECTURE, dataset_name, len(x_train), epochs,
                model_path.parent)
    model = fit_classifier(x_train, y_train, tuple(dataset.image_shape),
                           int(dataset.num_classes), epochs, seed, progress)
    accuracy = classifier_accuracy(model, x_test, y_test)
    info = {
        "dataset": dataset_name,
        "architecture": CLASSIFIER_ARCHITECTURE,
        "test_accuracy": round(float(accuracy), 4),
        "train_size": len(x_train),
        "test_size": len(x_test),
        "epochs": int(epochs),
        "seed": int(seed),
        "source": getattr(dataset, "source", ""),
        "train_seconds": round(time.time() - started, 1),
        "keras_version": keras.__version__,
        "path": str(model_path),
    }
    model_path.parent.mkdir(parents=True, exist_ok=True)
    # Write-then-rename: a parallel job (multirun) never reads a half-written file.
    temporary = model_path.with_name(f"{model_path.stem}.tmp{os.getpid()}.keras")
    model.save(temporary)
    os.replace(temporary, model_path)
    temporary_info = info_path.with_name(f"{info_path.name}.tmp{os.getpid()}")
    temporary_info.write_text(json.dumps(info, indent=2) + "\n")
    os.replace(temporary_info, info_path)
    log.warning("Classifier for %s: test accuracy %.4f (saved to %s).", dataset_name, accuracy,
                model_path)
    return model, info


def datasets_with_classifier() -> list[str]:
    """The shipped dataset choices whose class sets `classifier_key`, for error messages.

    Read from conf/dataset/*.yaml, so a new dataset with a classifier is listed without an edit.
    """
    from importlib.resources import files

    from hydra.utils import get_class
    from omegaconf import OmegaConf

    shipped = sorted(files("ganctl.conf").joinpath("dataset").iterdir(), key=lambda f: f.name)
    return [yaml.name.removesuffix(".yaml") for yaml in shipped if yaml.name.endswith(".yaml")
            and getattr(get_class(OmegaConf.create(yaml.read_text())._target_), "classifier_key",
                        None)]
