"""Datasets read real files written here: IDX, npz, CIFAR binary batches and image folders."""
from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import io
import logging
import tarfile
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ganctl.config import DatasetConfig
from ganctl.datasets import cifar10, fashion_mnist, idx, mnist
from ganctl.datasets.base import Dataset, shuffled_positions
from ganctl.datasets.cifar10 import CIFAR10
from ganctl.datasets.fashion_mnist import FashionMNIST
from ganctl.datasets.folder import ImageFolder
from ganctl.datasets.mixtures import Grid, Ring
from ganctl.datasets.mnist import MNIST
from ganctl.errors import UserError
from ganctl.registry import build
from tests.helpers import CONF, shipped_node, write_idx

CONF_DIR = CONF / "dataset"
RED, BLUE = (255, 0, 0), (0, 0, 255)


@pytest.fixture(autouse=True)
def no_downloads(monkeypatch, tmp_path):
    """Every test runs offline against an empty Keras cache unless it fills one."""
    monkeypatch.setenv("GANCTL_OFFLINE", "1")
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))


# --- helpers that write real dataset files ----------------------------------------------------

def fake_mnist(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Images whose first pixel is their index, so examples can be told apart."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    images[:, 0, 0] = np.arange(n)
    return images, rng.integers(0, 10, n).astype(np.uint8)


def write_idx_dir(directory: Path, n_train: int = 12, n_test: int = 5, gz: bool = True) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if gz else ""
    for split, n in (("train", n_train), ("test", n_test)):
        images, labels = fake_mnist(n, seed=n)
        image_name, label_name = idx.SPLIT_FILES[split]
        write_idx(directory / f"{image_name}{suffix}", images)
        write_idx(directory / f"{label_name}{suffix}", labels)
    return directory


def write_mnist_npz(path: Path, n_train: int = 12, n_test: int = 5) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    (x_train, y_train), (x_test, y_test) = fake_mnist(n_train), fake_mnist(n_test, seed=1)
    np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    return path


def write_cifar_dir(directory: Path, per_batch: int = 3) -> Path:
    """Binary batches whose red/green/blue planes are constant: (label, 10 * label, 200)."""
    directory.mkdir(parents=True, exist_ok=True)
    for name in cifar10.BATCH_FILES:
        labels = np.arange(per_batch) % 10
        records = [np.concatenate([[label], np.full(1024, label), np.full(1024, 10 * label),
                                   np.full(1024, 200)]) for label in labels]
        (directory / name).write_bytes(np.array(records, np.uint8).tobytes())
    return directory


def save_image(path: Path, size: tuple[int, int], colour=RED, mode: str = "RGB",
               border=None, border_px: int = 0) -> Path:
    """A `size` (width, height) image of `colour`, optionally with a border on the long sides."""
    image = Image.new("RGB", size, colour)
    width, height = size
    if width > height:
        borders = [(0, 0, border_px, height), (width - border_px, 0, width, height)]
    else:
        borders = [(0, 0, width, border_px), (0, height - border_px, width, height)]
    for box in borders if border is not None else []:
        image.paste(border, box)
    path.parent.mkdir(parents=True, exist_ok=True)
    # An adaptive palette keeps the colours exact (the default web palette would round them).
    image.convert(mode, palette=Image.Palette.ADAPTIVE).save(path)
    return path


@pytest.fixture
def image_dir(tmp_path) -> Path:
    """5 readable images of assorted formats, modes and sizes, plus a corrupt one and a text file."""
    root = tmp_path / "images"
    save_image(root / "a.png", (60, 40), border=BLUE, border_px=10)
    save_image(root / "b.JPG", (30, 30), colour=(128, 128, 128), mode="L")
    save_image(root / "c.bmp", (20, 50), colour=BLUE, mode="RGB")
    save_image(root / "nested" / "d.png", (33, 33), colour=(0, 255, 0), mode="RGBA")
    save_image(root / "nested" / "deeper" / "e.webp", (16, 24), colour=RED)
    (root / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not really a png")
    (root / "notes.txt").write_text("not an image")
    return root


def first_batches(dataset: Dataset, batch_size: int, seed: int, count: int, skip: int = 0):
    stream = dataset.tf_dataset(batch_size, seed=seed, skip=skip).take(count)
    return [(x.numpy(), y.numpy()) for x, y in stream]


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def web_root(tmp_path, monkeypatch):
    """A local HTTP server for the download path: (folder it serves, its base URL)."""
    root = tmp_path / "web"
    root.mkdir()
    handler = functools.partial(QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.delenv("GANCTL_OFFLINE")
    yield root, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- IDX -----------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["data-idx3-ubyte.gz", "data-idx3-ubyte"])
def test_read_idx_round_trips(tmp_path, name):
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    np.testing.assert_array_equal(idx.read_idx(write_idx(tmp_path / name, array)), array)


@pytest.mark.parametrize("damage, message", [
    (lambda data: b"\x00\x00\x07\x03" + data[4:], "magic number"),
    (lambda data: b"\x08\x03\x00\x00" + data[4:], "magic number"),
    (lambda data: data[:-5], "truncated"),
    (lambda data: data[:10], "truncated"),
    (lambda data: data + b"\x00", "longer than its header"),
])
@pytest.mark.parametrize("gz", [True, False])
def test_read_idx_rejects_damaged_files(tmp_path, damage, message, gz):
    good = write_idx(tmp_path / "good-idx3-ubyte", np.zeros((2, 3, 3)))
    bad = tmp_path / ("bad-idx3-ubyte.gz" if gz else "bad-idx3-ubyte")
    damaged = damage(good.read_bytes())
    bad.write_bytes(gzip.compress(damaged) if gz else damaged)
    with pytest.raises(UserError, match=message) as error:
        idx.read_idx(bad)
    assert str(bad) in str(error.value)


def test_read_idx_rejects_broken_gzip(tmp_path):
    bad = write_idx(tmp_path / "cut-idx3-ubyte.gz", np.zeros((4, 5, 5)))
    bad.write_bytes(bad.read_bytes()[:-8])
    with pytest.raises(UserError, match="cut-idx3-ubyte.gz"):
        idx.read_idx(bad)


# --- construction ----------------------------------------------------------------------------

@pytest.mark.parametrize("factory, shape, classes, kind", [
    (lambda: MNIST(path="/nonexistent"), (28, 28, 1), 10, "image"),
    (lambda: FashionMNIST(path="/nonexistent"), (28, 28, 1), 10, "image"),
    (lambda: CIFAR10(path="/nonexistent"), (32, 32, 3), 10, "image"),
    (lambda: ImageFolder("/nonexistent", resolution=16, channels=1), (16, 16, 1), 0, "image"),
    (lambda: Ring(), (2,), 8, "points"),
    (lambda: Grid(), (2,), 25, "points"),
])
def test_construction_reads_nothing(factory, shape, classes, kind):
    dataset = factory()
    assert (dataset.image_shape, dataset.num_classes, dataset.kind) == (shape, classes, kind)
    assert dataset.source == ""
    assert dataset.bounded == (kind == "image")


@pytest.mark.parametrize("yaml_file", sorted(CONF_DIR.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_dataset_yaml_builds(yaml_file, tmp_path):
    node = shipped_node(DatasetConfig, yaml_file)
    if "folder" in yaml_file.stem and node.path is None:  # the one dataset that needs a path
        node.path = str(tmp_path)
    assert isinstance(build(node, "dataset", DatasetConfig), Dataset)


@pytest.mark.parametrize("factory, field", [
    (lambda: MNIST(limit=0), "dataset.limit=0"),
    (lambda: CIFAR10(limit=-3), "dataset.limit=-3"),
    (lambda: FashionMNIST(limit=2.5), "dataset.limit=2.5"),
    (lambda: ImageFolder("x", channels=2), "dataset.channels=2"),
    (lambda: ImageFolder("x", resolution=4), "dataset.resolution=4"),
    (lambda: ImageFolder("x", on_bad_file="ignore"), "dataset.on_bad_file='ignore'"),
    (lambda: ImageFolder("x", limit=0), "dataset.limit=0"),
    (lambda: Ring(std=0), "dataset.std=0"),
    (lambda: Grid(std=-1.0), "dataset.std=-1.0"),
    (lambda: Ring(size=0), "dataset.size=0"),
])
def test_bad_settings_are_user_errors(factory, field):
    with pytest.raises(UserError, match=field.replace(".", r"\.")):
        factory()


# --- MNIST -----------------------------------------------------------------------------------

@pytest.mark.parametrize("layout", ["idx_gz_dir", "idx_raw_dir", "npz_file", "npz_dir"])
def test_mnist_reads_user_path(tmp_path, layout):
    if layout.startswith("idx"):
        path = write_idx_dir(tmp_path / "mnist", gz=layout == "idx_gz_dir")
        expected_train = fake_mnist(12, seed=12)
    else:
        npz = write_mnist_npz(tmp_path / "mnist" / "mnist.npz")
        path = npz if layout == "npz_file" else npz.parent
        expected_train = fake_mnist(12)
    dataset = MNIST(path=str(path))
    x, y = dataset.arrays("train")
    assert x.shape == (12, 28, 28, 1) and x.dtype == np.uint8 and y.dtype == np.int64
    np.testing.assert_array_equal(x[..., 0], expected_train[0])
    np.testing.assert_array_equal(y, expected_train[1])
    assert dataset.arrays("test")[0].shape == (5, 28, 28, 1)
    assert str(tmp_path / "mnist") in dataset.source


def make_bad_mnist_path(root: Path, case: str) -> Path:
    root.mkdir()
    if case == "missing":
        return root / "missing"
    if case == "partial idx":
        write_idx_dir(root).joinpath("train-images-idx3-ubyte.gz").unlink()
    if case == "broken npz":
        (root / "mnist.npz").write_bytes(b"not a zip")
        return root / "mnist.npz"
    if case == "no examples":
        return write_mnist_npz(root / "mnist.npz", n_train=0)
    if case == "wrong image size":
        write_idx(write_idx_dir(root) / "train-images-idx3-ubyte.gz", np.zeros((12, 27, 27)))
    return root


@pytest.mark.parametrize("case", ["missing", "empty", "partial idx", "broken npz",
                                  "no examples", "wrong image size"])
def test_mnist_unusable_user_path_is_an_error_not_a_fallback(tmp_path, case):
    path = make_bad_mnist_path(tmp_path / "mnist", case)
    with pytest.raises(UserError, match=str(path)):
        MNIST(path=str(path)).arrays()


def test_mnist_uses_keras_cache_only_if_it_is_the_known_file(tmp_path, monkeypatch):
    npz = write_mnist_npz(tmp_path / "keras_home" / "datasets" / "mnist.npz")
    unknown = MNIST()
    unknown.arrays()
    assert "bundled" in unknown.source  # not the published file (and offline): not used
    monkeypatch.setattr(mnist, "SHA256", sha256(npz))
    dataset = MNIST()
    assert dataset.arrays()[0].shape == (12, 28, 28, 1)
    assert dataset.source == str(npz)


def test_mnist_falls_back_to_bundled_test_split_offline(caplog):
    dataset = MNIST()
    with caplog.at_level(logging.WARNING, logger="ganctl"):
        x, y = dataset.arrays("train")
    assert x.shape == (10000, 28, 28, 1) and y.shape == (10000,)
    assert x.mean() == pytest.approx(33.79, abs=0.01)
    assert np.bincount(y).min() > 800  # all ten digits, roughly balanced
    assert "bundled" in dataset.source and "10,000 images" in dataset.source
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "bundled" in warnings[0].getMessage()
    assert "dataset.path=" in warnings[0].getMessage()
    np.testing.assert_array_equal(dataset.arrays("test")[0], x)


def test_limit_restricts_training_examples_only(tmp_path):
    dataset = MNIST(path=str(write_mnist_npz(tmp_path / "mnist.npz")), limit=3)
    x, _ = dataset.arrays("train")
    assert len(x) == 3 and len(dataset.arrays("train", limit=2)[0]) == 2
    assert len(dataset.arrays("test")[0]) == 5
    assert "first 3" in dataset.source
    seen = {round(float(v + 1) * 127.5) for batch, _ in first_batches(dataset, 2, 0, 10)
            for v in batch[:, 0, 0, 0]}
    assert seen == {0, 1, 2}  # first pixels are the example indices


# --- Fashion-MNIST ---------------------------------------------------------------------------

def test_fashion_mnist_reads_user_path_and_keras_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(fashion_mnist, "DEBIAN_DIR", tmp_path / "no-debian-package")
    dataset = FashionMNIST(path=str(write_idx_dir(tmp_path / "fashion")))
    assert dataset.arrays()[0].shape == (12, 28, 28, 1)
    assert str(tmp_path / "fashion") in dataset.source
    write_idx_dir(tmp_path / "keras_home" / "datasets" / "fashion-mnist", n_train=7)
    cached = FashionMNIST()
    assert cached.arrays()[0].shape == (7, 28, 28, 1)
    assert "keras_home" in cached.source


def test_fashion_mnist_prefers_debian_package_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(fashion_mnist, "DEBIAN_DIR", write_idx_dir(tmp_path / "debian", n_train=9))
    write_idx_dir(tmp_path / "keras_home" / "datasets" / "fashion-mnist", n_train=7)
    assert FashionMNIST().arrays()[0].shape == (9, 28, 28, 1)


def test_fashion_mnist_unavailable_explains_the_three_ways(tmp_path, monkeypatch):
    monkeypatch.setattr(fashion_mnist, "DEBIAN_DIR", tmp_path / "no-debian-package")
    with pytest.raises(UserError, match="three ways") as error:
        FashionMNIST().arrays()
    for hint in ("apt-get install dataset-fashion-mnist", "dataset.path=", "GANCTL_OFFLINE"):
        assert hint in str(error.value)
    with pytest.raises(UserError, match=str(tmp_path)):
        FashionMNIST(path=str(tmp_path)).arrays()


# --- CIFAR-10 ------------------------------------------------------------------------------

@pytest.mark.parametrize("point_at", ["batches_dir", "parent_dir"])
def test_cifar10_reads_binary_batches(tmp_path, point_at):
    batches = write_cifar_dir(tmp_path / "cifar" / cifar10.BIN_DIR)
    dataset = CIFAR10(path=str(batches if point_at == "batches_dir" else batches.parent))
    x, y = dataset.arrays("train")
    assert x.shape == (15, 32, 32, 3) and x.dtype == np.uint8
    assert dataset.arrays("test")[0].shape == (3, 32, 32, 3)
    # Planes are R, G, B in order: pixel values (label, 10 * label, 200).
    np.testing.assert_array_equal(x[:, 5, 7], np.stack([y, 10 * y, np.full_like(y, 200)], 1))
    assert str(batches) in dataset.source


def test_cifar10_refuses_pickled_python_version(tmp_path):
    pickled = tmp_path / "cifar-10-batches-py"
    pickled.mkdir()
    for name in ("data_batch_1", "batches.meta", "test_batch"):
        (pickled / name).write_bytes(b"\x80\x04 whatever")
    for path in (pickled, tmp_path):
        with pytest.raises(UserError, match="pickle") as error:
            CIFAR10(path=str(path)).arrays()
        assert "cifar-10-binary.tar.gz" in str(error.value)


def test_cifar10_rejects_bad_batches_and_missing_data(tmp_path):
    batches = write_cifar_dir(tmp_path / cifar10.BIN_DIR)
    (batches / "data_batch_3.bin").write_bytes(b"\x01" * 100)
    with pytest.raises(UserError, match="data_batch_3.bin"):
        CIFAR10(path=str(batches)).arrays()
    with pytest.raises(UserError, match="no CIFAR-10 binary batches"):
        CIFAR10(path=str(tmp_path / "empty")).arrays()
    with pytest.raises(UserError, match="three ways"):
        CIFAR10().arrays()  # offline, empty Keras cache


def test_cifar10_uses_keras_cache(tmp_path):
    write_cifar_dir(tmp_path / "keras_home" / "datasets" / cifar10.BIN_DIR, per_batch=2)
    assert CIFAR10().arrays()[0].shape == (10, 32, 32, 3)


def test_cifar10_extracts_only_the_batch_files(tmp_path):
    write_cifar_dir(tmp_path / "src" / cifar10.BIN_DIR)
    archive = tmp_path / "cifar-10-binary.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "src" / cifar10.BIN_DIR, arcname=cifar10.BIN_DIR)
        evil = tarfile.TarInfo("../escaped.txt")
        evil.size = 3
        tar.addfile(evil, io.BytesIO(b"bad"))
    cifar10._extract_batches(archive, tmp_path / "out")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(cifar10.BATCH_FILES)
    assert not (tmp_path / "escaped.txt").exists()


# --- image folder -------------------------------------------------------------------------------

def test_image_folder_scans_recursively_and_skips_bad_files(image_dir, caplog):
    dataset = ImageFolder(str(image_dir), resolution=16, channels=3)
    with caplog.at_level(logging.WARNING, logger="ganctl"):
        x, y = dataset.arrays()
    assert x.shape == (5, 16, 16, 3) and x.dtype == np.uint8 and not y.any()
    assert dataset.source.startswith("5 images in") and "1 unreadable" in dataset.source
    assert any("skipped 1 unreadable" in r.getMessage() and "broken.png" in r.getMessage()
               for r in caplog.records)
    # Sorted by path: a.png, b.JPG, broken.png (skipped), c.bmp, nested/d.png, nested/deeper/e.webp
    np.testing.assert_allclose(x[:, 8, 8], [RED, (128,) * 3, BLUE, (0, 255, 0), RED], atol=3)
    assert len(dataset.arrays("train", limit=2)[0]) == 2


@pytest.mark.parametrize("channels", [1, 3])
def test_image_folder_batches(image_dir, channels):
    batches = first_batches(ImageFolder(str(image_dir), resolution=8, channels=channels), 2, 0, 4)
    for x, y in batches:
        assert x.shape == (2, 8, 8, channels) and x.dtype == np.float32 and y.dtype == np.int32
        assert -1.0 <= x.min() and x.max() <= 1.0


@pytest.mark.parametrize("size", [(60, 40), (40, 60)], ids=["wide", "tall"])
def test_image_folder_centre_crop_removes_long_side_borders(tmp_path, size):
    save_image(tmp_path / "framed.png", size, colour=RED, border=BLUE, border_px=10)
    x, _ = ImageFolder(str(tmp_path), resolution=8).arrays()
    np.testing.assert_array_equal(x[0], np.broadcast_to(RED, (8, 8, 3)))


def test_image_folder_decodes_palette_images_with_pillow(tmp_path):
    # TF reads a palette BMP's indices as gray levels; these go through Pillow instead.
    save_image(tmp_path / "palette.bmp", (12, 12), colour=(200, 30, 10), mode="P")
    np.testing.assert_allclose(ImageFolder(str(tmp_path), resolution=8).arrays()[0][0, 4, 4],
                               (200, 30, 10), atol=1)


def test_image_folder_on_bad_file_error_names_the_file(image_dir):
    with pytest.raises(UserError, match="broken.png"):
        ImageFolder(str(image_dir), on_bad_file="error").arrays()


def make_bad_folder(root: Path, case: str) -> Path:
    if case == "is a file":
        (root / "file.png").write_bytes(b"")
        return root / "file.png"
    if case == "only text":
        (root / "a.txt").write_text("x")
    if case == "only broken":
        (root / "x.png").write_text("x")
    return root / "missing" if case == "does not exist" else root


@pytest.mark.parametrize("case, message", [
    ("does not exist", "does not exist"),
    ("is a file", "is a file"),
    ("empty", "contains no images"),
    ("only text", "contains no images"),
    ("only broken", "none of its 1 image files"),
])
def test_image_folder_path_errors_name_the_path(tmp_path, case, message):
    path = make_bad_folder(tmp_path, case)
    with pytest.raises(UserError, match=message) as error:
        ImageFolder(str(path)).arrays()
    assert str(path) in str(error.value)
    if "no images" in message:
        assert "png/jpg/jpeg/webp/bmp" in str(error.value)


# --- order: a pure function of (seed, position) ----------------------------------------------------

def test_shuffled_positions_cover_each_epoch_once():
    positions = list(shuffled_positions(7, seed=3).take(21).as_numpy_iterator())
    for epoch in range(3):
        assert sorted(positions[7 * epoch:7 * epoch + 7]) == list(range(7))
    assert positions[:7] != positions[7:14]  # reshuffled each epoch
    assert list(shuffled_positions(7, seed=3, skip=9).take(5).as_numpy_iterator()) == \
        positions[9:14]
    assert list(shuffled_positions(7, seed=3, repeat=False).as_numpy_iterator()) == positions[:7]
    assert list(shuffled_positions(7, seed=3, skip=7, repeat=False).as_numpy_iterator()) == []


@pytest.fixture(params=["mnist", "ring", "folder"])
def small_dataset(request, tmp_path, image_dir) -> Dataset:
    if request.param == "mnist":
        return MNIST(path=str(write_mnist_npz(tmp_path / "mnist.npz", n_train=10)))
    if request.param == "ring":
        return Ring(size=10)
    return ImageFolder(str(image_dir), resolution=8)


def test_order_depends_only_on_seed_and_position(small_dataset):
    batch_size, count = 2, 9  # crosses several epoch boundaries
    reference = first_batches(small_dataset, batch_size, seed=5, count=count)
    again = first_batches(small_dataset, batch_size, seed=5, count=count)
    other = first_batches(small_dataset, batch_size, seed=6, count=count)
    for (x, y), (x2, y2) in zip(reference, again):
        np.testing.assert_array_equal(x, x2)
        np.testing.assert_array_equal(y, y2)
    assert any(not np.array_equal(x, x2) for (x, _), (x2, _) in zip(reference, other))
    for k in (1, 4, 7):
        resumed = first_batches(small_dataset, batch_size, seed=5, count=count - k,
                                skip=k * batch_size)
        for (x, y), (x2, y2) in zip(reference[k:], resumed):
            np.testing.assert_array_equal(x, x2)
            np.testing.assert_array_equal(y, y2)


def test_one_pass_without_repeat_drops_the_remainder(small_dataset):
    n = len(small_dataset.arrays()[0])
    batches = list(small_dataset.tf_dataset(3, seed=0, repeat=False))
    assert len(batches) == n // 3


def test_in_memory_batches_are_scaled_examples(tmp_path):
    dataset = MNIST(path=str(write_mnist_npz(tmp_path / "mnist.npz", n_train=10)))
    x_all, y_all = dataset.arrays()
    for x, y in first_batches(dataset, 4, seed=1, count=3):
        assert x.dtype == np.float32 and y.dtype == np.int32 and x.shape == (4, 28, 28, 1)
        assert -1.0 <= x.min() and x.max() <= 1.0
        index = np.rint((x[:, 0, 0, 0] + 1) * 127.5).astype(int)  # first pixel = index
        np.testing.assert_allclose(x, x_all[index] / 127.5 - 1.0, atol=1e-6)
        np.testing.assert_array_equal(y, y_all[index])


# --- Gaussian mixtures --------------------------------------------------------------------------

@pytest.mark.parametrize("factory, modes", [
    (Ring, [(np.cos(a), np.sin(a)) for a in np.arange(8) * np.pi / 4]),
    (Grid, [(a, b) for a in range(-4, 5, 2) for b in range(-4, 5, 2)]),
])
def test_mixture_modes_and_spread(factory, modes):
    dataset = factory(size=20000)
    distances = np.linalg.norm(dataset.modes[:, None] - np.array(modes)[None], axis=-1)
    assert len(dataset.modes) == len(modes) and (distances.min(axis=0) < 1e-6).all()
    x, y = dataset.arrays()
    assert x.shape == (20000, 2) and x.dtype == np.float32 and y.dtype == np.int64
    assert set(np.unique(y)) == set(range(len(modes)))
    offsets = x - dataset.modes[y]
    assert offsets.mean(0) == pytest.approx([0, 0], abs=5 * dataset.std / np.sqrt(len(x)))
    assert offsets.std(0) == pytest.approx([dataset.std] * 2, rel=0.03)
    np.testing.assert_array_equal(x, factory(size=20000).arrays()[0])  # same pool every time
    assert not np.array_equal(x[:100], dataset.arrays("test")[0][:100])


def test_mixture_batches_are_raw_coordinates():
    dataset = Grid(size=50)
    pool = {tuple(p) for p in dataset.arrays()[0]}
    for x, y in first_batches(dataset, 8, seed=0, count=3):
        assert x.dtype == np.float32 and y.dtype == np.int32 and x.shape == (8, 2)
        assert all(tuple(p) in pool for p in x)
        assert np.abs(x - dataset.modes[y]).max() < 0.5  # each point is near its labelled mode


# --- downloads, served locally ---------------------------------------------------------------

def test_mnist_downloads_into_keras_cache_and_checks_the_hash(tmp_path, web_root, monkeypatch):
    root, url = web_root
    served = write_mnist_npz(root / "mnist.npz", n_train=6)
    monkeypatch.setattr(mnist, "ORIGIN", url + "mnist.npz")
    monkeypatch.setattr(mnist, "SHA256", sha256(served))
    dataset = MNIST()
    assert dataset.arrays()[0].shape == (6, 28, 28, 1)
    assert dataset.source == str(tmp_path / "keras_home" / "datasets" / "mnist.npz")
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "other_home"))
    monkeypatch.setattr(mnist, "SHA256", "0" * 64)  # a tampered file is not used
    for _ in range(2):  # the rejected download stays in the cache but is never used
        tampered = MNIST()
        tampered.arrays()
        assert "bundled" in tampered.source


def test_fashion_mnist_and_cifar10_download(tmp_path, web_root, monkeypatch):
    root, url = web_root
    monkeypatch.setattr(fashion_mnist, "DEBIAN_DIR", tmp_path / "no-debian-package")
    monkeypatch.setattr(fashion_mnist, "ORIGIN", url)
    write_idx_dir(root, n_train=8)
    fashion = FashionMNIST()
    assert fashion.arrays()[0].shape == (8, 28, 28, 1)
    assert str(tmp_path / "keras_home" / "datasets" / "fashion-mnist") in fashion.source

    archive = root / "cifar-10-binary.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(write_cifar_dir(tmp_path / "src" / cifar10.BIN_DIR), arcname=cifar10.BIN_DIR)
    monkeypatch.setattr(cifar10, "ORIGIN", url + archive.name)
    monkeypatch.setattr(cifar10, "SHA256", sha256(archive))
    dataset = CIFAR10()
    assert dataset.arrays()[0].shape == (15, 32, 32, 3)
    assert str(tmp_path / "keras_home" / "datasets" / cifar10.BIN_DIR) in dataset.source


def test_a_base_class_missing_its_methods_cannot_be_built():
    """Datasets, losses and feature extractors are abstract bases: a subclass that forgets a
    method fails when constructed, not halfway through a run."""
    from ganctl.datasets.base import ArrayDataset, Dataset
    from ganctl.losses.base import Loss
    from ganctl.metrics.features import FeatureExtractor

    for base in (Dataset, ArrayDataset, Loss, FeatureExtractor):
        with pytest.raises(TypeError, match="abstract"):
            type("Incomplete", (base,), {})()


@pytest.mark.parametrize("limit", [None, 5])
def test_a_folder_counts_its_training_images_without_decoding_them(limit, tmp_path):
    from ganctl.datasets.folder import ImageFolder
    from tests.conftest import write_image_folder

    write_image_folder(tmp_path, n=12)
    folder = ImageFolder(str(tmp_path), resolution=16, limit=limit)
    assert folder.training_size() == len(folder.arrays("train", limit=limit)[0]) == (limit or 12)
