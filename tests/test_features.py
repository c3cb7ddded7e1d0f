"""Feature extractors: the cached classifier (trained here on a tiny synthetic dataset) and the
InceptionV3 paths that need no download (error messages, shapes with random weights)."""
from __future__ import annotations

import json
import logging
import os
import shutil

import numpy as np
import pytest

from ganctl.errors import UserError
from ganctl.evaluation import evaluate
from ganctl.metrics import features
from ganctl.metrics.features import (
    ClassifierExtractor,
    InceptionExtractor,
    PixelExtractor,
    build_extractor,
    classifier_paths,
)


class Bars:
    """10 classes told apart by which row of a 16x16 image carries a bright bar, plus noise."""

    image_shape = (16, 16, 1)
    num_classes = 10
    kind = "image"
    source = "synthetic bars"

    def arrays(self, split="train", limit=None):
        n = 300 if split == "train" else 100
        r = np.random.default_rng(0 if split == "train" else 1)
        labels = np.arange(n) % 10
        images = r.integers(0, 60, size=(n, 16, 16, 1), dtype=np.uint8)
        for image, label in zip(images, labels, strict=True):
            image[1 + int(label) * 3 // 2, 2:14] = 255
        return images[:limit], labels[:limit].astype(np.int64)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GANCTL_CACHE", str(tmp_path))
    return tmp_path


@pytest.fixture(scope="module")
def bars_cache(tmp_path_factory):
    """A cache folder that holds one trained bars classifier once bars_classifier is built."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def bars_classifier(bars_cache):
    """One trained classifier shared by the tests that only use it (training takes seconds)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GANCTL_CACHE", str(bars_cache))
        yield ClassifierExtractor(Bars(), "bars", epochs=1)


def copy_trained_cache(bars_cache, cache) -> None:
    """Put the shared bars classifier in this test's own cache: a copy, not another training."""
    shutil.copytree(bars_cache / "classifiers", cache / "classifiers")


def test_classifier_trains_once_caches_and_records_its_accuracy(cache, caplog):
    model_path, info_path = classifier_paths("bars")
    assert model_path.parent == cache / "classifiers"
    extractor = ClassifierExtractor(Bars(), "bars", epochs=1)
    info = json.loads(info_path.read_text())
    assert info["train_size"] == 300 and info["test_size"] == 100 and info["epochs"] == 1
    assert 0.0 <= info["test_accuracy"] <= 1.0
    assert info["architecture"] == features.CLASSIFIER_ARCHITECTURE

    images, _ = Bars().arrays("test")
    extracted = extractor.extract(images, batch_size=32)
    assert extracted.features.shape == (100, 128)
    assert extracted.probs.shape == (100, 10) and extracted.num_labels == 10
    np.testing.assert_allclose(extracted.probs.sum(axis=1), 1.0, rtol=1e-5)

    # A second extractor loads the cache: the files stay untouched and the features agree.
    stamps = model_path.stat().st_mtime_ns, info_path.stat().st_mtime_ns
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="ganctl"):
        again = ClassifierExtractor(Bars(), "bars", epochs=1)
    assert (model_path.stat().st_mtime_ns, info_path.stat().st_mtime_ns) == stamps
    assert "Training" not in caplog.text
    np.testing.assert_allclose(again.extract(images).features, extracted.features, rtol=1e-4,
                               atol=1e-5)


def test_a_corrupt_cached_classifier_is_rebuilt(bars_classifier, bars_cache, cache, caplog):
    copy_trained_cache(bars_cache, cache)
    model_path, info_path = classifier_paths("bars")
    assert model_path.is_file() and info_path.is_file()
    model_path.write_bytes(b"this is not a keras file")
    with caplog.at_level(logging.WARNING, logger="ganctl"):
        rebuilt = ClassifierExtractor(Bars(), "bars", epochs=1)
    assert "unusable" in caplog.text and "training a new one" in caplog.text
    assert rebuilt.extract(Bars().arrays("test")[0][:5]).features.shape == (5, 128)
    # ... and the rebuilt file is a good cache again.
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="ganctl"):
        ClassifierExtractor(Bars(), "bars", epochs=1)
    assert "unusable" not in caplog.text
    # A damaged info file is not trusted either.
    info_path.write_text("{not json")
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="ganctl"):
        ClassifierExtractor(Bars(), "bars", epochs=1)
    assert "JSONDecodeError" in caplog.text


def test_classifier_reads_three_channel_images_per_channel(bars_classifier):
    extractor = bars_classifier
    digits, _ = Bars().arrays("test")
    stacked = np.concatenate([digits[:40], digits[40:80], digits[20:60]], axis=-1)
    extracted = extractor.extract(stacked, batch_size=16)
    assert extractor.per_channel and extracted.features.shape == (40, 3 * 128)
    single = extractor.extract(digits).labels
    assert extracted.probs.shape == (40, 1000) and extracted.num_labels == 1000
    np.testing.assert_allclose(extracted.probs.sum(axis=1), 1.0, rtol=1e-4)
    np.testing.assert_array_equal(
        extracted.labels, 100 * single[:40] + 10 * single[40:80] + single[20:60])
    result = evaluate(stacked, None, ["modes", "is"], extractor, is_splits=2)
    assert result["metrics"]["modes_total"] == 1000
    assert result["features"]["per_channel"] is True


def test_classifier_rejects_images_of_another_size(bars_classifier):
    with pytest.raises(UserError, match=r"takes 16x16 images, but got 28x28"):
        bars_classifier.extract(np.zeros((2, 28, 28, 1), np.uint8))
    with pytest.raises(UserError, match=r"C = 1 \(grayscale\) or 3"):
        bars_classifier.extract(np.zeros((2, 16, 16, 4), np.uint8))


def test_inception_without_weights_says_how_to_provide_them(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.setenv("GANCTL_OFFLINE", "1")     # never try the network in tests
    with pytest.raises(UserError) as err:
        features.resolve_inception_weights(None)
    message = str(err.value)
    assert features.INCEPTION_NOTOP_FILE in message and "inception_weights=<file>" in message
    assert str(tmp_path / "keras" / "models") in message
    with pytest.raises(UserError, match=r"inception_weights=.*missing\.h5 does not exist"):
        features.resolve_inception_weights(tmp_path / "missing.h5")
    (tmp_path / "garbage.h5").write_bytes(b"not hdf5")
    with pytest.raises(UserError, match="is not a Keras weights file"):
        features.resolve_inception_weights(tmp_path / "garbage.h5")


def test_inception_finds_weights_in_the_keras_cache(tmp_path, monkeypatch):
    import h5py

    models = tmp_path / "models"
    models.mkdir()
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    with h5py.File(models / features.INCEPTION_NOTOP_FILE, "w") as f:
        f.attrs["layer_names"] = [b"conv2d", b"mixed10"]
    notop = models / features.INCEPTION_NOTOP_FILE
    assert features.resolve_inception_weights(None) == (notop, False)
    with h5py.File(models / features.INCEPTION_TOP_FILE, "w") as f:
        f.attrs["layer_names"] = [b"conv2d", b"predictions"]
    assert features.resolve_inception_weights(None) == (models / features.INCEPTION_TOP_FILE, True)


def test_inception_weights_file_with_or_without_top(tmp_path):
    import h5py

    # Keras 3 .weights.h5 layout: layer groups named by type; the top is InceptionV3's only Dense.
    for name, groups, has_top in (("top.weights.h5", ["conv2d", "dense"], True),
                                  ("notop.weights.h5", ["conv2d", "mixed10"], False)):
        with h5py.File(tmp_path / name, "w") as f:
            for group in groups:
                f.create_group(f"layers/{group}")
        assert features.resolve_inception_weights(tmp_path / name) == (tmp_path / name, has_top)


def test_inception_features_have_2048_dims():
    extractor = InceptionExtractor(random_weights=True)
    images = np.random.default_rng(0).integers(0, 256, size=(2, 28, 28, 1), dtype=np.uint8)
    extracted = extractor.extract(images)
    assert extracted.features.shape == (2, 2048) and extracted.probs is None
    assert np.isfinite(extracted.features).all()
    with pytest.raises(UserError, match="'is'.*'inception'"):
        evaluate(images, None, ["is"], extractor)


def test_cache_dir_precedence(monkeypatch, tmp_path):
    monkeypatch.delenv("GANCTL_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert features.cache_dir() == tmp_path / "xdg" / "ganctl"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert features.cache_dir() == tmp_path / "home" / ".cache" / "ganctl"
    monkeypatch.setenv("GANCTL_CACHE", str(tmp_path / "mine"))
    assert features.cache_dir() == tmp_path / "mine"
    name = f"mnist-{features.CLASSIFIER_ARCHITECTURE}.keras"
    assert classifier_paths("mnist")[0] == tmp_path / "mine" / "classifiers" / name


def test_build_extractor_choices(cache):
    assert isinstance(build_extractor("auto", points=True), PixelExtractor)
    with pytest.raises(UserError, match=r"features=resnet.*auto, classifier, inception, pixels"):
        build_extractor("resnet")
    with pytest.raises(UserError, match="features=classifier needs one of the labelled datasets"):
        build_extractor("classifier", dataset=Bars(), dataset_name="celeba")
    with pytest.raises(UserError, match="features=inception works on images"):
        build_extractor("inception", points=True)
    assert os.environ["GANCTL_CACHE"] == str(cache)


def test_each_dataset_says_which_classifier_it_uses():
    """The per-dataset knowledge sits on the dataset classes, not in a table of names."""
    from ganctl.datasets.cifar10 import CIFAR10
    from ganctl.datasets.fashion_mnist import FashionMNIST
    from ganctl.datasets.mixtures import Ring
    from ganctl.datasets.mnist import MNIST
    from ganctl.datasets.stacked_mnist import StackedMNIST

    assert [d.classifier_key for d in (MNIST(), FashionMNIST(), CIFAR10())] == \
        ["mnist", "fashion_mnist", "cifar10"]
    stacked = StackedMNIST(size=8)
    # Stacked MNIST reads the digit classifier channel by channel: same cache, trained on digits.
    assert stacked.classifier_key == "mnist" and stacked.classifier_training_set() is stacked.digits
    assert Ring().classifier_key is None
    assert features.datasets_with_classifier() == ["cifar10", "fashion_mnist", "mnist",
                                                   "stacked_mnist"]


def test_build_extractor_asks_the_dataset_for_its_classifier(bars_classifier, bars_cache, cache):
    class DoubledBars(Bars):
        """Stands for a dataset built from another one's images, as Stacked MNIST is."""

        image_shape = (16, 16, 3)
        classifier_key = "bars"

        def classifier_training_set(self):
            return Bars()

    # The cache holds the bars classifier only: asking for any other key would train and
    # write a second one there.
    copy_trained_cache(bars_cache, cache)
    cached = sorted((cache / "classifiers").iterdir())
    stamps = [path.stat().st_mtime_ns for path in cached]
    extractor = build_extractor("auto", dataset=DoubledBars(), dataset_name="doubled_bars",
                                classifier_epochs=1)
    assert isinstance(extractor, ClassifierExtractor)
    assert extractor.image_shape == (16, 16, 1) and classifier_paths("bars")[0].is_file()
    assert sorted((cache / "classifiers").iterdir()) == cached
    assert [path.stat().st_mtime_ns for path in cached] == stamps


def test_the_classifier_learns_every_training_image_whatever_the_runs_limit(cache, caplog):
    """It is one scorer per dataset, cached for all runs: a run's dataset.limit (2,000 images in
    the README's ADA table) must not decide what it learnt, nor a cache an older ganctl wrote."""
    from ganctl.datasets.base import ArrayDataset

    class LimitedBars(ArrayDataset):
        image_shape, num_classes, classifier_key = Bars.image_shape, Bars.num_classes, "bars"

        def __init__(self, limit=None):
            self.limit = limit

        def _read(self):
            self.source = Bars.source
            return {split: Bars().arrays(split) for split in ("train", "test")}

    run_data = LimitedBars(limit=60)
    assert len(run_data.arrays("train")[0]) == 60  # what the run trains on
    extractor = build_extractor("auto", dataset=run_data, dataset_name="bars", classifier_epochs=1)
    assert extractor.info["train_size"] == 300

    # The cache as an older ganctl left it, from the run's 60 images, is trained again.
    _, info_path = classifier_paths("bars")
    info_path.write_text(json.dumps({**extractor.info, "train_size": 60}))
    with caplog.at_level(logging.WARNING, logger="ganctl"):
        again = build_extractor("auto", dataset=run_data, dataset_name="bars", classifier_epochs=1)
    assert "it learnt 60 training images of the 300 there are" in caplog.text
    assert again.info["train_size"] == 300 and json.loads(info_path.read_text())["train_size"] == 300
