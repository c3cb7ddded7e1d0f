"""`ganctl sample` for class-conditional runs: labels=, per_class=, class-by-row grids and
format=dataset, on real (2-step) cdcgan and dcgan runs."""
from __future__ import annotations

import re

import numpy as np
import pytest
from PIL import Image

from ganctl.core.generators import sample_labels
from ganctl.errors import UserError
from tests.helpers import TINY, compose, ganctl

CELL = 28 + 2   # an MNIST image and the grid's padding


@pytest.fixture(scope="module")
def runs(tmp_path_factory, data_overrides, cdcgan_run):
    """{"cdcgan": run dir, "dcgan": run dir}: MNIST (bundled copy), 2 training steps each; the
    cdcgan one is conftest's shared run (nothing here writes into a run folder)."""
    from ganctl.training.loop import train

    dcgan = tmp_path_factory.mktemp("dcgan")
    train(compose("train", [*TINY, "train.steps=2", "model=dcgan", *data_overrides["mnist"]]), dcgan)
    return {"cdcgan": cdcgan_run, "dcgan": dcgan}


def sample(run, *overrides):
    """`ganctl sample` in this process (TF is loaded once): the path it wrote."""
    from ganctl.commands.sample import run as sample_run

    return sample_run(compose("sample", [f"run={run}", *overrides]))


def test_sample_labels_cover_the_classes_as_documented():
    labels, columns = sample_labels(64, 10, grid=True)   # default grid: one row per class
    assert columns == 7 and list(labels) == [c for c in range(10) for _ in range(7)]
    labels, columns = sample_labels(10, 10, labels=[3, 7])   # other formats cycle, balanced
    assert columns is None and list(labels) == [3, 7] * 5
    labels, columns = sample_labels(64, 10, labels=[3, 7], per_class=4, grid=True)
    assert columns == 4 and list(labels) == [3] * 4 + [7] * 4
    labels, _ = sample_labels(25, 10)
    assert np.bincount(labels).tolist() == [3] * 5 + [2] * 5
    labels, columns = sample_labels(64, 1000, grid=True)   # Stacked MNIST: a square grid instead
    assert columns is None and list(labels) == list(range(64))


BAD_LABELS = [
    (["labels=[3,12]"], r"labels=\[3, 12\]: 12 is not a class.*from 0 to 9 \(mnist has 10 classes"),
    (["labels=[-1]"], r"-1 is not a class.*from 0 to 9"),
    (["labels=[a]"], r"labels=\[a\] is not a list of class numbers.*from 0 to 9"),
    (["labels=3"], r"labels=3 is not a list of class numbers.*in brackets: e\.g\. labels=\[3\]"),
    (["labels=[]"], r"labels=\[\] names no class"),
    (["per_class=0"], r"per_class=0 must be 1 or more"),
    (["per_class=x"], r"per_class=x must be a whole number"),
]


@pytest.mark.parametrize("args,message", BAD_LABELS, ids=[a[0] for a, _ in BAD_LABELS])
def test_bad_labels_are_one_paragraph_naming_the_value_and_the_range(runs, tmp_path, args,
                                                                    message):
    result = ganctl("sample", f"run={runs['cdcgan']}", *args, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("ganctl: error: ") and "Traceback" not in result.stderr
    assert len(result.stderr.strip().split("\n\n")) == 1
    assert re.search(message, " ".join(result.stderr.split())), result.stderr
    assert list(tmp_path.iterdir()) == []


def test_labels_on_an_unconditional_run_name_the_conditional_models(runs, tmp_path):
    result = ganctl("sample", f"run={runs['dcgan']}", "labels=[3]", cwd=tmp_path)
    error = " ".join(result.stderr.split())
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert "labels=[3] needs a class-conditional run" in error
    assert "unconditional (model=dcgan)" in error and "model=cdcgan" in error
    for asked in (["format=dataset"], ["per_class=2"]):
        with pytest.raises(UserError, match=rf"{asked[0]} needs a class-conditional run"):
            sample(runs["dcgan"], *asked, f"out={tmp_path / 'x'}")
    assert list(tmp_path.iterdir()) == []


def test_grid_has_one_row_per_class_showing_that_class(runs, tmp_path):
    from ganctl.core.generators import load_generator
    from ganctl.images import to_uint8
    from ganctl.core.generators import generate

    sample(runs["cdcgan"], "per_class=3", f"out={tmp_path / 'all.png'}")
    assert Image.open(tmp_path / "all.png").size == (3 * CELL + 2, 10 * CELL + 2)
    sample(runs["cdcgan"], f"out={tmp_path / 'default.png'}")     # num=64: 10 rows of 7
    assert Image.open(tmp_path / "default.png").size == (7 * CELL + 2, 10 * CELL + 2)

    sample(runs["cdcgan"], "labels=[3,7]", "per_class=2", "seed=5", f"out={tmp_path / 'g.png'}")
    grid = np.asarray(Image.open(tmp_path / "g.png"))
    assert grid.shape == (2 * CELL + 2, 2 * CELL + 2)
    # Row i is G(z_j, labels[i]), with column j's z shared by the rows.
    generator, _, _ = load_generator(runs["cdcgan"])
    z = np.random.default_rng(5).standard_normal((2, generator.inputs[0].shape[-1]))
    for row, label in enumerate((3, 7)):
        expected = to_uint8(generate(generator, z.astype(np.float32), np.full(2, label)))
        for column in range(2):
            top, left = 2 + row * CELL, 2 + column * CELL
            cell = grid[top:top + 28, left:left + 28]
            assert np.abs(cell.astype(int) - expected[column, ..., 0]).max() <= 1


def test_format_dataset_writes_a_labelled_folder_and_npz(runs, tmp_path):
    sample(runs["cdcgan"], "format=dataset", "per_class=3", f"out={tmp_path / 'synthetic'}")
    folders = sorted(p.name for p in (tmp_path / "synthetic").iterdir())
    assert folders == [str(c) for c in range(10)]   # mnist's class_names
    for folder in folders:
        files = sorted((tmp_path / "synthetic" / folder).glob("*.png"))
        assert len(files) == 3
        image = Image.open(files[0])
        assert image.mode == "L" and image.size == (28, 28)   # the data's one channel

    sample(runs["cdcgan"], "format=dataset", "labels=[3,7]", "num=11",
           f"out={tmp_path / 'synthetic.npz'}")
    with np.load(tmp_path / "synthetic.npz", allow_pickle=False) as data:
        images, labels, names = data["images"], data["labels"], data["class_names"]
    assert images.shape == (11, 28, 28, 1) and images.dtype == np.uint8
    assert labels.dtype == np.int64 and set(labels) == {3, 7}
    assert np.bincount(labels, minlength=10)[[3, 7]].tolist() == [6, 5]
    assert list(names) == [str(c) for c in range(10)]

    # The other formats carry the classes too: npz gets 'labels', PNG names end in the class.
    sample(runs["cdcgan"], "format=npz", "labels=[1]", "num=4", f"out={tmp_path / 's.npz'}")
    with np.load(tmp_path / "s.npz", allow_pickle=False) as data:
        assert data["images"].shape == (4, 28, 28) and data["labels"].tolist() == [1] * 4
    sample(runs["cdcgan"], "format=png", "num=3", f"out={tmp_path / 'pngs'}")
    assert sorted(p.name for p in (tmp_path / "pngs").iterdir()) == [
        "000000_0.png", "000001_1.png", "000002_2.png"]


def test_format_dataset_never_writes_over_existing_files(runs, tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me\n")
    (tmp_path / "old.npz").write_bytes(b"keep me too")
    for out, message in ((tmp_path / "mine", "is a folder that is not empty"),
                         (tmp_path / "old.npz", "already exists; format=dataset never overwrites")):
        result = ganctl("sample", f"run={runs['cdcgan']}", "format=dataset", f"out={out}",
                        cwd=tmp_path)
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
        assert message in " ".join(result.stderr.split())
    assert [p.name for p in (tmp_path / "mine").iterdir()] == ["notes.txt"]
    assert (tmp_path / "old.npz").read_bytes() == b"keep me too"
    # An empty folder is fine: a user may create it first.
    (tmp_path / "empty").mkdir()
    sample(runs["cdcgan"], "format=dataset", "num=2", f"out={tmp_path / 'empty'}")
    assert sorted(p.name for p in (tmp_path / "empty").iterdir()) == ["0", "1"]
