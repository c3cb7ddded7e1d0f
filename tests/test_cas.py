"""Classification Accuracy Score and class match: on generators whose answer is known (real images
looked up by label, or by noise alone), and end to end through `ganctl eval`."""
from __future__ import annotations

import json

import numpy as np
import pytest

from ganctl.datasets.base import ArrayDataset
from ganctl.errors import UserError
from ganctl.evaluation import auto_metrics, score_generator
from ganctl.metrics.cas import (
    LabelledData,
    balanced_subset,
    classification_accuracy_score,
    shared_fraction,
)
from tests.helpers import ganctl

PER_CLASS = 400     # real images per class a lookup generator can return
NUM = 2000          # generated images per CAS (200 per class)


class MNISTHalves(ArrayDataset):
    """The bundled MNIST split cut in two disjoint halves: train 5,000, test 5,000 images."""

    image_shape, num_classes, source = (28, 28, 1), 10, "bundled MNIST, two disjoint halves"

    def _read(self):
        from ganctl.datasets.mnist import MNIST

        x, y = MNIST().arrays("train")
        return {"train": (x[:5000], y[:5000]), "test": (x[5000:], y[5000:])}


def lookup_generator(dataset, use_labels: bool):
    """A keras [z, labels] -> image model returning real training images: of the requested class
    when use_labels (a perfect conditional G), else of a class picked by the noise alone."""
    import keras
    from keras import ops

    x, y = dataset.arrays("train")
    table = np.concatenate([x[y == c][:PER_CLASS] for c in range(10)])   # sorted by class
    table = table.astype(np.float32) / 127.5 - 1.0

    class Lookup(keras.layers.Layer):
        def call(self, inputs):
            z, labels = inputs
            pick = ops.cast(ops.abs(z[:, 0]) * 1e4, "int32") % PER_CLASS
            if use_labels:
                index = ops.cast(labels, "int32") * PER_CLASS + pick
            else:
                index = ops.cast(ops.abs(z[:, 1]) * 1e4, "int32") % len(table)
            return ops.take(ops.convert_to_tensor(table), index, axis=0)

    z = keras.Input((8,), name="z")
    labels = keras.Input((), dtype="int32", name="labels")
    return keras.Model([z, labels], Lookup()([z, labels]))


@pytest.fixture(scope="module")
def halves():
    return MNISTHalves()


@pytest.fixture(scope="module")
def classifier(halves, tmp_path_factory):
    """The real-data classifier class_match asks (trained on the train half, in a private cache)."""
    from ganctl.metrics.features import ClassifierExtractor

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GANCTL_CACHE", str(tmp_path_factory.mktemp("cache")))
        yield ClassifierExtractor(halves, "mnist_halves", epochs=2, train_limit=2000)


def test_cas_of_a_perfect_conditional_generator_is_close_to_cas_real(halves, classifier):
    result = score_generator(lookup_generator(halves, use_labels=True), halves, "mnist_halves",
                             ["cas", "class_match"], classifier, num=NUM, seed=0)
    metrics = result["metrics"]
    assert metrics["cas_real"] > 0.85, metrics
    assert abs(metrics["cas"] - metrics["cas_real"]) < 0.05, metrics
    # Real images of the right class: the classifier recognises them as often as real test images.
    assert metrics["class_match"] > classifier.info["test_accuracy"] - 0.05, metrics
    assert result["provenance"]["cas"]["train_fake"] == result["provenance"]["cas"]["train_real"]
    assert "notes" not in result   # the halves share no image


def test_cas_of_a_generator_ignoring_its_labels_is_near_chance(halves, classifier):
    result = score_generator(lookup_generator(halves, use_labels=False), halves, "mnist_halves",
                             ["cas", "class_match"], classifier, num=NUM, seed=0)
    metrics = result["metrics"]
    assert metrics["cas"] < 0.25 and metrics["class_match"] < 0.2, metrics   # chance: 0.1
    assert metrics["cas_real"] > 0.85, metrics


def test_cas_is_seeded_and_balances_the_real_baseline():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (120, 8, 8, 1), dtype=np.uint8)
    labels = np.arange(120) % 3
    images[np.arange(120), labels * 2, :] = 255   # the class is a bright row
    real = LabelledData(images[:60], labels[:60], images[60:], labels[60:], 3)
    fake_classes = np.array([0] * 10 + [1] * 5 + [2] * 5)
    first = classification_accuracy_score(images[:20], fake_classes, real, epochs=1, seed=3)
    again = classification_accuracy_score(images[:20], fake_classes, real, epochs=1, seed=3)
    assert first[0] == again[0]
    assert first[1]["train_real"] == 20 and first[1]["epochs"] == 1

    picks = balanced_subset(labels, np.array([10, 5, 0]), np.random.default_rng(0))
    assert np.bincount(labels[picks], minlength=3).tolist() == [10, 5, 0]
    picks = balanced_subset(labels, np.array([50, 5, 0]), np.random.default_rng(0))  # 40 of 0s
    assert len(set(picks)) == 55 and np.bincount(labels[picks], minlength=3)[0] == 40
    assert shared_fraction(images[:60], images[30:90]) == pytest.approx(0.5)


def test_cas_and_class_match_need_a_conditional_generator(halves, classifier):
    import keras

    z = keras.Input((8,))
    unconditional = keras.Model(z, keras.layers.Reshape((28, 28, 1))(
        keras.layers.Dense(784, activation="tanh")(z)))
    assert "cas" not in auto_metrics(False, classifier)
    assert auto_metrics(False, classifier, conditional=True)[-2:] == ["cas", "class_match"]
    for metric in ("cas", "class_match"):
        with pytest.raises(UserError, match=r"model \(model=dcgan\) is unconditional.*model=cdcgan"):
            score_generator(unconditional, halves, "mnist_halves", [metric], classifier, num=10,
                            model_name="dcgan")


def test_eval_of_a_conditional_run_reports_cas_and_the_shared_split_note(tmp_path, compose_cfg,
                                                                           data_overrides):
    """`ganctl eval` on a cdcgan run: auto includes cas; offline MNIST's train and test splits
    are the same images, and metrics.json says so."""
    from ganctl.training.loop import train

    run = tmp_path / "run"
    run.mkdir()
    train(compose_cfg(["model=cdcgan", "train.steps=2", *data_overrides["mnist"]]), run)
    result = ganctl("eval", f"run={run}", "num=250", "features=pixels", "cas_epochs=1",
                    cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    saved = json.loads((run / "eval" / "metrics.json").read_text())
    assert 0 <= saved["metrics"]["cas"] <= 1 and 0 <= saved["metrics"]["cas_real"] <= 1
    assert "fid" in saved["metrics"] and "class_match" not in saved["metrics"]  # pixels: no classifier
    assert saved["provenance"]["cas"]["epochs"] == 1
    assert saved["provenance"]["cas"]["train_fake"] == 250
    assert any("also in the training split" in note for note in saved["notes"]), saved
    assert "note: " in result.stdout and "cas_real" in result.stdout
