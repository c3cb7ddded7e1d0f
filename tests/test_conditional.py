"""Class-conditional training: labelled folders, labels through the step, cdcgan learning a class."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from ganctl.errors import UserError
from tests.helpers import ganctl

SHADES = {"dark": 30, "light": 225}  # two classes a conditional G must tell apart


def write_shaded_folder(root, per_class: int = 16, size: int = 16) -> None:
    """root/dark/*.png and root/light/*.png: flat grey images with a little noise."""
    for name, value in SHADES.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng(value)
        for i in range(per_class):
            pixels = np.clip(value + rng.normal(0, 10, (size, size)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i}.png")


def folder(path, **options):
    from ganctl.datasets.folder import ImageFolder

    return ImageFolder(str(path), resolution=16, channels=1, **options)


def test_folder_labels_come_from_sub_folders_in_every_reader(tmp_path):
    write_shaded_folder(tmp_path)
    (tmp_path / "light" / "deeper").mkdir()
    Image.fromarray(np.full((16, 16), 225, np.uint8)).save(tmp_path / "light" / "deeper" / "x.png")
    dataset = folder(tmp_path, labels=True)
    assert dataset.num_classes == 2 and dataset.class_names == ("dark", "light")

    x, y = dataset.arrays()
    assert len(x) == len(y) == 33 and np.bincount(y).tolist() == [16, 17]
    # Each label names the shade of its own image, in arrays() and in the training pipeline.
    assert ((x.reshape(len(x), -1).mean(1) > 127) == (y == 1)).all()
    images, labels = next(iter(dataset.tf_dataset(33, seed=3, repeat=False)))
    assert labels.dtype.name == "int32"
    assert ((images.numpy().reshape(33, -1).mean(1) > 0) == (labels.numpy() == 1)).all()

    assert folder(tmp_path).num_classes == 0  # labels are opt-in
    assert not folder(tmp_path).arrays()[1].any()

    # dataset.limit draws across the classes (the first N paths would all be "dark").
    limited = folder(tmp_path, labels=True, limit=10)
    _, y = limited.arrays()
    assert len(y) == 10 and set(y) == {0, 1} and "random subset" in limited.source


@pytest.mark.parametrize("layout,message", [
    ("loose", "sit directly in it"),
    ("one_class", "at least two class sub-folders"),
])
def test_folder_labels_refuse_layouts_without_classes(tmp_path, layout, message):
    write_shaded_folder(tmp_path, per_class=2)
    if layout == "loose":
        Image.fromarray(np.zeros((16, 16), np.uint8)).save(tmp_path / "stray.png")
    else:
        for path in (tmp_path / "light").iterdir():
            path.unlink()
    with pytest.raises(UserError, match=message):
        _ = folder(tmp_path, labels=True).num_classes
    with pytest.raises(UserError, match="dataset.labels='yes'"):
        folder(tmp_path, labels="yes")


def test_conditional_and_unconditional_halves_do_not_mix():
    import keras

    from ganctl.models import cdcgan, dcgan
    from ganctl.training.steps import check_conditional_pair

    generator = cdcgan.build_generator(z_dim=4, image_shape=(16, 16, 1), num_classes=2, width=4)
    discriminator = dcgan.build_discriminator(image_shape=(16, 16, 1), width=4)
    with pytest.raises(UserError, match="only the generator is class-conditional"):
        check_conditional_pair(generator, discriminator)
    with pytest.raises(UserError, match="needs labelled data"):
        cdcgan.build_discriminator(image_shape=(16, 16, 1), num_classes=0)
    assert isinstance(generator, keras.Model)


def test_projection_discriminator_scores_depend_on_the_label():
    from ganctl.models import cdcgan

    discriminator = cdcgan.build_discriminator(image_shape=(16, 16, 1), num_classes=3, width=4)
    images = np.random.default_rng(0).uniform(-1, 1, (5, 16, 16, 1)).astype(np.float32)
    scores = [discriminator([images, np.full(5, c, np.int32)]).numpy() for c in range(3)]
    assert scores[0].shape == (5, 1)
    assert not np.allclose(scores[0], scores[1]) and not np.allclose(scores[1], scores[2])


def test_cdcgan_learns_to_draw_the_requested_class(compose_cfg, tmp_path):
    """Dark and light classes: after 300 steps G(z, dark) is dark and G(z, light) is light.
    Unless the real labels reach both networks in step, G cannot separate them."""
    import keras

    from ganctl.training.loop import train

    write_shaded_folder(tmp_path / "data")
    cfg = compose_cfg(["model=cdcgan", "dataset=folder", f"dataset.path={tmp_path / 'data'}",
                       "dataset.labels=true", "dataset.resolution=16", "dataset.channels=1",
                       "train.batch_size=16", "train.steps=300", "train.log_every=100",
                       "train.ema=0"])
    (tmp_path / "run").mkdir()
    train(cfg, tmp_path / "run")
    generator = keras.saving.load_model(tmp_path / "run" / "generator.keras", safe_mode=True)
    z = np.random.default_rng(1).standard_normal((64, cfg.model.z_dim)).astype(np.float32)
    dark, light = (float(np.mean(generator([z, np.full(64, c, np.int32)], training=False)))
                   for c in (0, 1))
    targets = {name: value / 127.5 - 1 for name, value in SHADES.items()}  # -0.76, +0.76
    assert light - dark > 0.8, (dark, light)
    assert abs(dark - targets["dark"]) < 0.5 and abs(light - targets["light"]) < 0.5, (dark, light)


def test_cdcgan_trains_resumes_and_samples_by_class_through_the_cli(cdcgan_run, tmp_path):
    """The user's cycle for a conditional model: train, resume further, sample by class. The
    first 2 steps are conftest's shared run (trained in-process; `ganctl train` of a new run is
    tested in test_train.py); the resume and the sampling run the real command."""
    import json
    import shutil

    run = tmp_path / "run"
    shutil.copytree(cdcgan_run, run)
    # As if written by an older ganctl: settings added since then take their defaults.
    saved = (run / "config.yaml").read_text()
    (run / "config.yaml").write_text(saved.replace("  strategy: auto\n", ""))
    assert "strategy" not in (run / "config.yaml").read_text()
    result = ganctl("train", f"resume={run}", "train.steps=4", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4]
    assert sorted(p.name for p in (run / "checkpoints").glob("*.index"))[-1] == "ckpt-4.index"

    out = tmp_path / "synthetic.npz"
    result = ganctl("sample", f"run={run}", "format=dataset", "per_class=3", f"out={out}",
                    cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    with np.load(out) as data:
        assert data["images"].shape == (30, 28, 28, 1) and data["images"].dtype == np.uint8
        assert np.bincount(data["labels"]).tolist() == [3] * 10
