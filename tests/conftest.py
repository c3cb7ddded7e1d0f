"""Fixtures: offline datasets on tiny files the tests write, and configs composed like the CLI."""
from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

from tests.helpers import TINY, compose, write_idx

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ["GANCTL_OFFLINE"] = "1"  # tests never download


def write_mnist_like(directory, n: int = 64, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    for split, count in (("train", n), ("t10k", n // 2)):
        write_idx(directory / f"{split}-images-idx3-ubyte.gz", rng.integers(0, 256, (count, 28, 28)))
        write_idx(directory / f"{split}-labels-idx1-ubyte.gz", rng.integers(0, 10, count))


def write_cifar_bin(directory, n: int = 32, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    names = [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]
    for name in names:
        records = np.concatenate([rng.integers(0, 10, (n, 1)), rng.integers(0, 256, (n, 3072))], 1)
        (directory / name).write_bytes(records.astype(np.uint8).tobytes())


def write_image_folder(directory, n: int = 12, seed: int = 0) -> None:
    """Mixed sizes and formats in two class folders, one of them nested a level deeper, so the
    folder dataset is searched recursively and can be labelled (dataset.labels=true)."""
    rng = np.random.default_rng(seed)
    for folder in (directory / "cats", directory / "dogs" / "nested"):
        folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        size = (int(rng.integers(20, 50)), int(rng.integers(20, 50)))
        pixels = rng.integers(0, 256, (*size[::-1], 3), dtype=np.uint8)
        folder = directory / "dogs" / "nested" if i % 2 else directory / "cats"
        Image.fromarray(pixels).save(folder / f"img{i}.{('png', 'jpg', 'bmp')[i % 3]}")


def write_translation_folders(root, n: int = 6, size: int = 40, seed: int = 0) -> dict:
    """Tiny two-domain data in every layout, B the negative of A (so a pair is recognisable):
    side-by-side A|B files with a test split, A/ and B/ folders with matching names, and
    unpaired trainA/ and trainB/ of different sizes. {layout: folder}."""
    rng = np.random.default_rng(seed)
    layouts = {name: root / name for name in ("side_by_side", "folders", "unpaired")}
    for split, count in (("train", n), ("test", n // 2)):
        (layouts["side_by_side"] / split).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            a = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
            Image.fromarray(np.concatenate([a, 255 - a], 1)).save(
                layouts["side_by_side"] / split / f"{i:03d}.png")
            for domain, pixels in (("A", a), ("B", 255 - a)):
                folder = layouts["folders"] / (domain if split == "train" else f"test{domain}")
                folder.mkdir(parents=True, exist_ok=True)
                Image.fromarray(pixels).save(folder / f"{i:03d}.png")
    for domain, count in (("trainA", n), ("trainB", n // 2 + 1), ("testA", 2), ("testB", 2)):
        (layouts["unpaired"] / domain).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(
                layouts["unpaired"] / domain / f"{domain}_{i}.png")
    return layouts


@pytest.fixture(scope="session")
def translation_folders(tmp_path_factory) -> dict:
    return write_translation_folders(tmp_path_factory.mktemp("translation"))


@pytest.fixture(scope="session")
def data_overrides(tmp_path_factory) -> dict[str, list[str]]:
    """Per dataset option, the overrides that point it at tiny local files."""
    root = tmp_path_factory.mktemp("data")
    translation = write_translation_folders(root / "translation")
    write_mnist_like(root / "fashion")
    write_cifar_bin(root / "cifar" / "cifar-10-batches-bin")
    write_image_folder(root / "images")
    os.environ["KERAS_HOME"] = str(root / "keras_home")  # empty cache: mnist uses the bundled copy
    return {
        "mnist": ["dataset.limit=256"],
        "fashion_mnist": [f"dataset.path={root / 'fashion'}"],
        "cifar10": [f"dataset.path={root / 'cifar' / 'cifar-10-batches-bin'}"],
        # Labelled, so class-conditional models train on it too; the others ignore the labels.
        "folder": [f"dataset.path={root / 'images'}", "dataset.resolution=32", "dataset.labels=true"],
        "stacked_mnist": ["dataset.size=256"],
        "ring": ["dataset.size=512"],
        "grid": ["dataset.size=512"],
        "paired_folder": [f"dataset.path={translation['side_by_side']}", "dataset.resolution=32",
                          "dataset.load_size=36"],
        "unpaired_folder": [f"dataset.path={translation['unpaired']}", "dataset.resolution=32",
                            "dataset.load_size=36"],
    }


@pytest.fixture
def compose_cfg():
    """compose(overrides) -> the train config exactly as `ganctl train` would build it."""
    from ganctl.validate import check_train_config

    def _compose(overrides: list[str]):
        cfg = compose("train", [*TINY, *overrides])
        check_train_config(cfg)
        return cfg

    return _compose


@pytest.fixture(scope="session")
def cdcgan_run(tmp_path_factory, data_overrides):
    """A 2-step class-conditional run on MNIST (the bundled copy), trained once per test process
    and shared by the sample, export and resume tests. Read it as it is; a test that writes into
    a run (resume, export, report) works on its own copy: shutil.copytree(cdcgan_run, ...)."""
    from ganctl.training.loop import train

    run = tmp_path_factory.mktemp("cdcgan_run")
    train(compose("train", [*TINY, "train.steps=2", "model=cdcgan", *data_overrides["mnist"]]), run)
    return run
