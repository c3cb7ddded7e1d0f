"""Feature extractors: images -> features (and class probabilities) for the metrics.

Input convention: uint8 images, NHWC, values 0..255 (what datasets' `arrays()` and image files
give; use `to_uint8` for generator output in [-1, 1]). 2-D points (float, (N, 2)) go only to
`pixels`, which passes them through. Input is an array or an iterable of array batches, and is
processed one batch at a time, so memory stays bounded by the features themselves.

- `classifier`: a small CNN ganctl trains once per dataset on its labelled training split and
  caches (GANCTL_CACHE, else $XDG_CACHE_HOME/ganctl, else ~/.cache/ganctl). Offline, fast, and
  sensitive on small images. Penultimate layer = features, softmax = probabilities. Applied per
  channel to 3-channel images when trained on 1-channel ones (Stacked MNIST: 1,000 classes).
- `inception`: Keras InceptionV3 pool features (2048-d) at 299x299, the usual FID setting. Keras'
  ImageNet weights are not the TF-FID graph of the FID paper, so absolute FIDs differ from papers.
- `pixels`: downsampled pixels; a cheap fallback, and the identity for 2-D points.
"""
from __future__ import annotations

import abc
import dataclasses
import json
import logging
import math
import os
import re
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from ganctl.errors import UserError

log = logging.getLogger("ganctl.metrics")

EXTRACTORS = ("auto", "classifier", "inception", "pixels")
# Datasets with a labelled train/test split the classifier can learn; Stacked MNIST reuses MNIST's.
CLASSIFIER_DATASETS = {"mnist": "mnist", "fashion_mnist": "fashion_mnist", "cifar10": "cifar10",
                       "stacked_mnist": "mnist"}
# Bump when build_classifier or its training changes: old cache files are then never used.
CLASSIFIER_ARCHITECTURE = "cnn-v1"
INCEPTION_TOP_FILE = "inception_v3_weights_tf_dim_ordering_tf_kernels.h5"
INCEPTION_NOTOP_FILE = "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5"
INCEPTION_ORIGIN = "https://storage.googleapis.com/tensorflow/keras-applications/inception_v3/"
INCEPTION_NOTOP_MD5 = "bcbd6486424b2319ff4ef7d526e38f63"
INCEPTION_SIZE = 299


@dataclasses.dataclass
class Extracted:
    """What one pass over a set gives. features are float32 (float64 for points)."""

    features: np.ndarray                   # (N, D)
    probs: np.ndarray | None = None        # (N, classes), rows sum to 1
    labels: np.ndarray | None = None       # (N,) predicted class (Stacked MNIST: 100*d0+10*d1+d2)
    num_labels: int = 0


def to_uint8(images: np.ndarray) -> np.ndarray:
    """Generator output in [-1, 1] -> uint8 0..255, rounded the way image files are written."""
    return np.clip(np.rint((np.asarray(images, np.float32) + 1.0) * 127.5), 0, 255).astype(np.uint8)


def iter_batches(images: np.ndarray | Iterable[np.ndarray],
                 batch_size: int) -> Iterator[np.ndarray]:
    """Batches of at most batch_size from an array or from an iterable of arrays."""
    chunks = (images,) if isinstance(images, np.ndarray) else images
    for chunk in chunks:
        chunk = np.asarray(chunk)
        for start in range(0, len(chunk), batch_size):
            yield chunk[start:start + batch_size]


def check_images(batch: np.ndarray, where: str = "images") -> np.ndarray:
    """A uint8 NHWC batch (NHW gets a channel axis), or a UserError naming what was wrong."""
    if batch.dtype != np.uint8:
        raise UserError(f"{where} have dtype {batch.dtype}, but feature extraction takes uint8 "
                        "images with values 0..255. Convert images in [-1, 1] with "
                        "((x + 1) * 127.5).round().clip(0, 255).astype('uint8').")
    if batch.ndim == 3:
        batch = batch[..., None]
    if batch.ndim != 4 or batch.shape[-1] not in (1, 3):
        raise UserError(f"{where} have shape {batch.shape}; expected (N, H, W) or (N, H, W, C) "
                        "with C = 1 (grayscale) or 3 (RGB).")
    return batch


def _progress(batches: Iterator, total: int | None, progress: bool, what: str):
    if not progress:
        return batches
    from tqdm import tqdm
    return tqdm(batches, total=total, desc=what, unit="batch", leave=False)


def _num_batches(images, batch_size: int) -> int | None:
    return math.ceil(len(images) / batch_size) if isinstance(images, np.ndarray) else None


def inference_function(model, preprocess=None):
    """uint8 batch -> model(preprocess(float32 batch), training=False) as a list of numpy arrays.

    One tf.function with reduce_retracing, so the last, smaller batch of a set reuses the traced
    graph instead of tracing again for each new batch size (predict_on_batch would).
    """
    import tensorflow as tf

    @tf.function(reduce_retracing=True)
    def forward(batch):
        batch = tf.cast(batch, tf.float32)
        outputs = model(preprocess(batch) if preprocess else batch, training=False)
        return outputs if isinstance(outputs, (list, tuple)) else [outputs]

    return lambda batch: [np.asarray(output, np.float32) for output in forward(batch)]


class FeatureExtractor(abc.ABC):
    """Base: `extract` streams batches through `_batch` and concatenates the results."""

    name = ""
    gives_probs = False
    max_batch_size: int | None = None     # caps the caller's batch size where activations are big

    def extract(self, images, batch_size: int = 250, progress: bool = False) -> Extracted:
        batch_size = min(batch_size, self.max_batch_size or batch_size)
        parts: list[tuple] = []
        batches = _progress(iter_batches(images, batch_size),
                            _num_batches(images, batch_size), progress, f"{self.name} features")
        for batch in batches:
            parts.append(self._batch(batch))
        if not parts:
            raise UserError("There are no images to extract features from (the set is empty).")
        features = np.concatenate([p[0] for p in parts])
        probs = np.concatenate([p[1] for p in parts]) if parts[0][1] is not None else None
        return self._finish(features, probs)

    @abc.abstractmethod
    def _batch(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """(features, class probabilities or None) for one uint8 batch."""

    def _finish(self, features: np.ndarray, probs: np.ndarray | None) -> Extracted:
        labels = probs.argmax(axis=1) if probs is not None else None
        return Extracted(features, probs, labels, probs.shape[1] if probs is not None else 0)

    def describe(self) -> dict:
        """Provenance recorded next to the metric values."""
        return {"name": self.name}


class PixelExtractor(FeatureExtractor):
    """Pixels averaged over f x f blocks (largest side at most max_side), scaled to [0, 1].

    2-D points (float (N, d) arrays) pass through unchanged in float64.
    """

    name = "pixels"

    def __init__(self, max_side: int = 16):
        self.max_side = max_side

    def _batch(self, batch):
        if batch.ndim == 2 and batch.dtype.kind == "f":
            return np.asarray(batch, np.float64), None
        batch = check_images(batch)
        _, height, width, channels = batch.shape
        factor = math.ceil(max(height, width) / self.max_side)
        h, w = height // factor, width // factor
        cropped = batch[:, :h * factor, :w * factor].astype(np.float32)
        pooled = cropped.reshape(len(batch), h, factor, w, factor, channels).mean(axis=(2, 4))
        return (pooled / 255.0).reshape(len(batch), -1), None

    def describe(self):
        return {"name": self.name, "max_side": self.max_side}


# --------------------------------------------------------------------------------------------
# classifier


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
    """Features and probabilities from ganctl's own classifier for `dataset_name`.

    `dataset` is the labelled dataset object to train on (for stacked_mnist, the MNIST dataset);
    it is only read when no valid cached classifier exists.
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
            return _load_classifier(model_path, info_path, dataset)
        except Exception as err:  # noqa: BLE001  any damage means: do not trust it, rebuild it
            log.warning("The cached classifier %s is unusable (%s: %s); training a new one.",
                        model_path, type(err).__name__, err)
    return _train_classifier(dataset, dataset_name, model_path, info_path, epochs, train_limit,
                             seed, progress)


def _load_classifier(model_path: Path, info_path: Path, dataset):
    import keras

    info = json.loads(info_path.read_text())
    if info.get("architecture") != CLASSIFIER_ARCHITECTURE:
        raise ValueError(f"architecture {info.get('architecture')!r}, expected "
                         f"{CLASSIFIER_ARCHITECTURE!r}")
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


# --------------------------------------------------------------------------------------------
# inception


class InceptionExtractor(FeatureExtractor):
    """InceptionV3 2048-d average-pool features at 299x299; probabilities when the weights have
    the ImageNet top (1000 classes; the FID paper's graph has 1008, so IS differs from papers).

    Images are resized bilinearly (antialiased when shrinking), grayscale is repeated to 3
    channels, then Keras' preprocess_input scales to [-1, 1].
    """

    name = "inception"
    max_batch_size = 50     # at 299x299 a batch of 50 already holds about 1 GB of activations

    def __init__(self, weights: str | os.PathLike | None = None, random_weights: bool = False):
        import keras

        if random_weights:    # shapes only: for tests and benchmarks
            self.weights_path, include_top = None, False
        else:
            self.weights_path, include_top = resolve_inception_weights(weights)
        model = keras.applications.InceptionV3(
            include_top=include_top, weights=None if random_weights else str(self.weights_path),
            input_shape=(INCEPTION_SIZE, INCEPTION_SIZE, 3),
            pooling=None if include_top else "avg")
        outputs = [model.get_layer("avg_pool").output if include_top else model.output]
        if include_top:
            outputs.append(model.output)
        self._model = inference_function(keras.Model(model.inputs, outputs), _inception_inputs)
        self.gives_probs = include_top

    def _batch(self, batch):
        batch = check_images(batch)
        if batch.shape[-1] == 1:
            batch = np.repeat(batch, 3, axis=-1)
        outputs = self._model(batch)
        return outputs[0], outputs[1] if self.gives_probs else None

    def describe(self):
        weights = str(self.weights_path) if self.weights_path else "random"
        return {"name": self.name, "weights": weights, "include_top": self.gives_probs}


def _inception_inputs(images):
    """float32 0..255 images of any size -> 299x299 in [-1, 1], InceptionV3's input."""
    import keras

    resized = keras.ops.image.resize(images, (INCEPTION_SIZE, INCEPTION_SIZE),
                                     interpolation="bilinear", antialias=True)
    return keras.applications.inception_v3.preprocess_input(resized)


def resolve_inception_weights(weights: str | os.PathLike | None) -> tuple[Path, bool]:
    """(weights file, whether it includes the top): the given file, the Keras cache, a download."""
    from ganctl.datasets.base import download, keras_home

    if weights is not None:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise UserError(f"eval.inception_weights={weights} does not exist. Give the path of "
                            f"Keras' InceptionV3 weights: {INCEPTION_NOTOP_FILE} (features only) "
                            "or "
                            f"{INCEPTION_TOP_FILE} (also enables the Inception Score).")
        return path, _has_top(path)
    models = keras_home() / "models"
    for name, include_top in ((INCEPTION_TOP_FILE, True), (INCEPTION_NOTOP_FILE, False)):
        if (models / name).is_file():
            return models / name, include_top
    path, why = download(INCEPTION_NOTOP_FILE, INCEPTION_ORIGIN + INCEPTION_NOTOP_FILE,
                         file_hash=INCEPTION_NOTOP_MD5, cache_subdir="models")
    if path is None:
        raise UserError(
            f"features=inception needs Keras' InceptionV3 weights, which are not available: "
            f"{why}. On a machine with internet, download {INCEPTION_ORIGIN}{INCEPTION_NOTOP_FILE} "
            f"(or {INCEPTION_TOP_FILE}, which also enables the Inception Score) and either put it "
            f"in {models}/ under that exact name or pass eval.inception_weights=<file>. "
            "Or use features=classifier (offline, trained by ganctl) or features=pixels.")
    return path, False


def _has_top(path: Path) -> bool:
    """Whether a Keras .h5 weights file has the 'predictions' layer; UserError if unreadable."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            group = f.get("model_weights", f)
            names = group.attrs.get("layer_names")
            if names is not None:
                return any((n.decode() if isinstance(n, bytes) else str(n)) == "predictions"
                           for n in names)
            # Keras 3 .weights.h5 names layer groups by type; the top is InceptionV3's only Dense.
            return "layers" in f and any(key.startswith("dense") for key in f["layers"])
    except OSError as err:
        raise UserError(f"eval.inception_weights={path} is not a Keras weights file (HDF5): {err}. "
                        f"Give {INCEPTION_NOTOP_FILE} or {INCEPTION_TOP_FILE}.") from err


# --------------------------------------------------------------------------------------------


def build_extractor(name: str, *, dataset=None, dataset_name: str | None = None,
                    points: bool = False, inception_weights: str | None = None,
                    classifier_epochs: int = 2,
                    progress: bool = False) -> FeatureExtractor:
    """The extractor called `name` (auto | classifier | inception | pixels).

    auto: pixels (identity) for 2-D points, the classifier for mnist, fashion_mnist, cifar10 and
    stacked_mnist, inception otherwise. `dataset` is the labelled dataset the classifier learns
    (for stacked_mnist, the MNIST dataset).
    """
    if name not in EXTRACTORS:
        raise UserError(f"eval.features={name!r} is not a feature extractor; choose one of "
                        f"{', '.join(EXTRACTORS)}.")
    if name == "auto":
        if points:
            name = "pixels"
        elif dataset is not None and dataset_name in CLASSIFIER_DATASETS:
            name = "classifier"
        else:
            name = "inception"
    if name == "pixels":
        return PixelExtractor()
    if points:
        raise UserError(f"features={name} works on images, but this set is 2-D points; use "
                        "features=pixels (or auto), which scores the points themselves.")
    if name == "inception":
        return InceptionExtractor(inception_weights)
    if dataset is None or dataset_name not in CLASSIFIER_DATASETS:
        raise UserError(f"features=classifier needs one of the labelled datasets "
                        f"{', '.join(CLASSIFIER_DATASETS)} to train on, but the dataset is "
                        f"{dataset_name or 'not known'}. Use features=inception or "
                        "features=pixels.")
    if dataset_name == "stacked_mnist":
        dataset = getattr(dataset, "digits", dataset)  # StackedMNIST carries its MNIST
    if dataset_name == "stacked_mnist" and tuple(dataset.image_shape) != (28, 28, 1):
        # The cache key is MNIST's: training on stacked images would overwrite the digit model.
        raise ValueError("build_extractor: for stacked_mnist pass the MNIST dataset (28x28x1 "
                         f"digits) to train on, not one of shape {dataset.image_shape}")
    return ClassifierExtractor(dataset, CLASSIFIER_DATASETS[dataset_name], classifier_epochs,
                               progress=progress)
