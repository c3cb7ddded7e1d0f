"""`inception`: Keras InceptionV3 pool features (2048-d) at 299x299, the usual FID setting.

Keras' ImageNet weights are not the TF-FID graph of the FID paper, so absolute FIDs differ from
papers.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ganctl.errors import UserError
from ganctl.images import check_images
from ganctl.metrics.features.base import FeatureExtractor, inference_function

INCEPTION_TOP_FILE = "inception_v3_weights_tf_dim_ordering_tf_kernels.h5"
INCEPTION_NOTOP_FILE = "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5"
INCEPTION_ORIGIN = "https://storage.googleapis.com/tensorflow/keras-applications/inception_v3/"
INCEPTION_NOTOP_MD5 = "bcbd6486424b2319ff4ef7d526e38f63"
INCEPTION_SIZE = 299


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
            raise UserError(f"inception_weights={weights} does not exist. Give the path of "
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
            f"in {models}/ under that exact name or pass inception_weights=<file>. "
            "Or use features=pixels, which works offline on any images (with fewer samples than "
            "its dimensions, leave FID out: metrics=[kid,precision_recall]), or "
            "features=classifier on mnist, fashion_mnist, cifar10 or stacked_mnist.")
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
        raise UserError(f"inception_weights={path} is not a Keras weights file (HDF5): {err}. "
                        f"Give {INCEPTION_NOTOP_FILE} or {INCEPTION_TOP_FILE}.") from err
