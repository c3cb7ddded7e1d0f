"""Training for real: every config combination steps, and the CLI's train/sample/resume cycle."""
from __future__ import annotations

import json

import numpy as np
import pytest
from omegaconf import OmegaConf

from ganctl import registry
from ganctl.errors import UserError
from tests.helpers import CONF, compose, config_choices, ganctl, refusal, translation_choices

MODELS, DATASETS, LOSSES = (config_choices(g) for g in ("model", "dataset", "loss"))
ALL_COMBINATIONS = [(m, d, lo) for m in MODELS for d in DATASETS for lo in LOSSES]
# Image-to-image models (model.translation set) learn from two-domain datasets and only those.
TRANSLATION_MODELS, TRANSLATION_DATASETS = translation_choices()


def fits(model: str, dataset: str) -> bool:
    return (model in TRANSLATION_MODELS) == (dataset in TRANSLATION_DATASETS)


# Training each of the ~140 triples would take most of the suite's budget. Datasets act on the
# input shape only, so every model trains with every dataset (default loss). Losses act on D's
# outputs only, which are (B, 1) logits for every model, so each loss trains once, with mlp on
# MNIST; only wgan_gp's penalty reaches into D (its input gradient: spectral norm, labels, packing,
# 2-D points, image pairs), so it trains with every model, on MNIST (points for mlp as well;
# paired images for the translation models). Every triple is still composed and checked below,
# which is where cyclegan refuses the other losses.
def generator_reads_real(loss: str) -> bool:
    target = OmegaConf.load(CONF / "loss" / f"{loss}.yaml")._target_
    return registry.resolve_target(target, "loss").generator_needs_real


TRAINED = sorted({(m, d, "ns") for m in MODELS for d in DATASETS if fits(m, d)}
                 | {("mlp", "mnist", lo) for lo in LOSSES}
                 | {(m, "mnist", "wgan_gp") for m in MODELS if fits(m, "mnist")}
                 | {(m, "paired_folder", "wgan_gp") for m in TRANSLATION_MODELS}
                 | {("mlp", "ring", "wgan_gp")}
                 # G's loss reading D on real data is its own path in each step: pix2pix's, and
                 # the simultaneous update (the grid's recipe) beside mnist's alternating one.
                 | {(m, d, lo) for lo in LOSSES if generator_reads_real(lo)
                    for m, d in [("pix2pix", "paired_folder"), ("mlp", "grid")]})


@pytest.mark.parametrize("model,dataset,loss", ALL_COMBINATIONS)
def test_every_combination_composes_and_checks(model, dataset, loss, compose_cfg, data_overrides):
    from ganctl.core.components import check_components

    overrides = [f"model={model}", f"dataset={dataset}", f"loss={loss}", *data_overrides[dataset]]
    if not fits(model, dataset):
        with pytest.raises(UserError, match="domain"):
            compose_cfg(overrides)
        return
    try:
        cfg = compose_cfg(overrides)
    except UserError as err:
        # pix2pix needs aligned pairs; translation steps take one D update per G update;
        # cyclegan trains with its own least-squares objective, not another loss.
        assert model in TRANSLATION_MODELS and ("pairs" in str(err)
                                                or "d_steps_per_g_step" in str(err)
                                                or "least-squares objective" in str(err)), err
        return
    check_components(cfg)
    assert cfg.loss._target_.startswith("ganctl.losses.") and cfg.dataset._target_


@pytest.mark.parametrize("model,dataset,loss", TRAINED)
def test_every_combination_trains_and_checkpoints(model, dataset, loss, compose_cfg,
                                                   data_overrides, tmp_path):
    import keras

    from ganctl.training.loop import train

    # One critic step per G step keeps 60 combinations fast; the default 5 is tested below.
    try:
        cfg = compose_cfg([f"model={model}", f"dataset={dataset}", f"loss={loss}",
                           "train.steps=2", "loss.d_steps_per_g_step=1", *data_overrides[dataset]])
        train(cfg, tmp_path)
    except UserError as err:
        # A model may refuse data it was not designed for (dcgan: 2-D points; the tutorial's
        # DCGAN: anything but 28x28x1; pix2pix: unpaired images; cyclegan: a loss other than its
        # own), but only with a message that names the mismatch.
        assert any(word in str(err) for word in ("image data", "28x28", "resolution",
                                                 "labelled data", "aligned pairs",
                                                 "least-squares objective")), err
        pytest.skip(f"{model} does not take {dataset}: {err}")
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2]
    assert all(np.isfinite(r[k]) for r in rows for k in ("d_loss", "g_loss", "d_real", "d_fake"))
    assert sorted(p.name for p in (tmp_path / "checkpoints").glob("*.index")) == ["ckpt-2.index"]
    generator = keras.saving.load_model(tmp_path / "generator.keras", safe_mode=True)
    shape = tuple(cfg_shape(tmp_path))
    # A translation G is fully convolutional: any height and width.
    assert generator.output_shape[1:] in (shape, (None, None, shape[-1]))


def cfg_shape(run_dir):
    """The data shape a run trained on, as its saved config and dataset describe it."""
    from ganctl import rundir
    from ganctl.core.components import build_dataset

    return build_dataset(rundir.load_run_config(run_dir).dataset).image_shape


def test_critic_steps_each_take_their_own_batch(compose_cfg, data_overrides, tmp_path):
    """wgan_gp's 5 critic updates per G update each see a fresh real batch."""
    from ganctl.training.loop import train

    cfg = compose_cfg(["model=mlp", "dataset=ring", "loss=wgan_gp", "train.steps=3",
                       *data_overrides["ring"]])
    assert cfg.loss.d_steps_per_g_step == 5
    train(cfg, tmp_path)
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["images_seen"] for r in rows] == [8 * 5 * s for s in (1, 2, 3)]
    assert all(r["gp"] > 0 for r in rows)


@pytest.mark.parametrize("ratio, d_updates, g_updates", [
    (["loss.g_steps_per_d_step=2"], 3, 6),
    (["loss=wgan_gp", "loss.d_steps_per_g_step=2", "loss.g_steps_per_d_step=3"], 6, 9)])
def test_each_step_takes_its_d_then_g_updates_and_g_takes_no_real_images(
        ratio, d_updates, g_updates, compose_cfg, data_overrides):
    from ganctl.core.components import build_dataset
    from ganctl.core.state import build_training_state
    from ganctl.training.steps import make_train_step

    cfg = compose_cfg(["model=mlp", "dataset=ring", "train.steps=3", *ratio,
                       *data_overrides["ring"]])
    dataset = build_dataset(cfg.dataset)
    state = build_training_state(cfg, dataset)
    step = make_train_step(state)
    # Real images per step: one batch per D update, none for G's.
    assert state.images_per_step == cfg.train.batch_size * cfg.loss.d_steps_per_g_step
    images, labels = next(iter(dataset.tf_dataset(state.images_per_step, seed=0)))
    for _ in range(3):
        step(images, labels)
    assert int(state.optimizers["discriminator"].iterations.numpy()) == d_updates
    assert int(state.optimizers["generator"].iterations.numpy()) == g_updates


class NoiseSizes:
    """The real generator, noting the rows of every batch of noise it is traced with."""

    def __init__(self, generator):
        self.generator, self.rows = generator, []

    def __call__(self, z, **kwargs):
        self.rows.append(int(z.shape[0]))
        return self.generator(z, **kwargs)

    def __getattr__(self, name):
        return getattr(self.generator, name)


@pytest.mark.parametrize("overrides, rows", [
    ([], [32, 32]),                                       # one D update's fakes, one G update
    (["loss.g_steps_per_d_step=2"], [32, 32, 32]),
    (["loss.g_steps_per_d_step=2", "train.g_batch_size=16"], [32, 16, 16]),
    (["loss.g_steps_per_d_step=3", "train.g_batch_size=8"], [32, 8, 8, 8])])
def test_g_updates_draw_g_batch_size_fakes_each(overrides, rows, compose_cfg, data_overrides):
    from ganctl.core.components import build_dataset
    from ganctl.core.state import build_training_state
    from ganctl.training.steps import make_train_step

    cfg = compose_cfg(["model=mlp", "dataset=ring", "train.batch_size=32", *overrides,
                       *data_overrides["ring"]])
    dataset = build_dataset(cfg.dataset)
    state = build_training_state(cfg, dataset)
    state.networks["generator"] = spy = NoiseSizes(state.generator)
    step = make_train_step(state)
    step(*next(iter(dataset.tf_dataset(32, seed=0))))
    assert spy.rows == rows


def test_a_recipe_splits_the_batch_among_g_updates_into_divisors():
    from ganctl.config import split_batch

    assert [split_batch(64, 2), split_batch(64, 1), split_batch(32, 3), split_batch(100, 3),
            split_batch(7, 2), split_batch(4, 8)] == [32, 64, 8, 25, 1, 1]


def test_a_g_batch_that_does_not_divide_the_batch_is_one_paragraph(compose_cfg):
    problem = refusal(compose_cfg, ["train.batch_size=64", "train.g_batch_size=48"])
    assert "train.g_batch_size=48" in problem and "[1, 2, 4, 8, 16, 32, 64]" in problem


def test_train_sample_resume_cycle_through_the_cli(tmp_path):
    """What a user does: train, sample in every format, resume and go further."""
    from PIL import Image

    from ganctl.commands.sample import run as sample_run

    run = tmp_path / "run"
    args = ["model.generator.width=8", "model.discriminator.width=8", "train.batch_size=16",
            "train.log_every=2", "train.sample_every=3", "train.checkpoint_every=3",
            "train.sample_grid=9", "dataset.limit=512"]
    result = ganctl("train", *args, "train.steps=6", f"hydra.run.dir={run}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr

    # The run directory holds what the README promises.
    assert "bundled MNIST test split" in (run / "config.yaml").read_text()
    assert "bundled MNIST" in result.stdout + result.stderr  # the one warning line
    assert sorted(p.name for p in (run / "samples").iterdir()) == [
        "step_000000.png", "step_000003.png", "step_000006.png"]
    assert sorted(p.name for p in (run / "checkpoints").glob("*.index")) == [
        "ckpt-3.index", "ckpt-6.index"]
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [2, 4, 6]
    assert {"d_loss", "g_loss", "d_real", "d_fake", "images_per_s", "wall_s"} <= set(rows[0])
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))
    assert (run / "train.log").stat().st_size > 0 and (run / "generator.keras").is_file()
    assert Image.open(run / "reals.png").size == Image.open(run / "samples/step_000006.png").size

    # Sampling, in every format: once through the real command (exit code, grid file), the rest
    # through the same command function in this process, so TensorFlow starts once.
    def sample(*extra):
        return sample_run(compose("sample", [f"run={run}", *extra]))

    out = ganctl("sample", f"run={run}", "num=16", f"out={tmp_path / 'grid.png'}", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert Image.open(tmp_path / "grid.png").size == (4 * 30 + 2, 4 * 30 + 2)
    sample("format=npz", "num=50", f"out={tmp_path / 's.npz'}")
    images = np.load(tmp_path / "s.npz")["images"]
    assert images.shape == (50, 28, 28) and images.dtype == np.uint8 and images.max() > images.min()
    sample("format=png", "num=5", f"out={tmp_path / 'pngs'}")
    assert len(list((tmp_path / "pngs").glob("*.png"))) == 5
    sample("interpolate=true", "num=4", "frames=8", f"out={tmp_path / 'walk.gif'}")
    assert Image.open(tmp_path / "walk.gif").n_frames == 8
    sample("format=npz", "num=8", "ema=false", "checkpoint=3", "seed=1", f"out={tmp_path / 'r.npz'}")
    sample("format=npz", "num=8", "ema=false", "checkpoint=3", "seed=1", f"out={tmp_path / 'r2.npz'}")
    assert np.array_equal(np.load(tmp_path / "r.npz")["images"], np.load(tmp_path / "r2.npz")["images"])
    sample("format=npz", "num=8", "ema=false", "checkpoint=6", "seed=1", f"out={tmp_path / 'r6.npz'}")
    assert not np.array_equal(np.load(tmp_path / "r.npz")["images"], np.load(tmp_path / "r6.npz")["images"])

    # Resume: the step count, metrics and sample numbering continue; the weights move on.
    result = ganctl("train", f"resume={run}", "train.steps=9", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [2, 4, 6, 8, 9]
    assert (run / "samples" / "step_000009.png").is_file()
    assert sorted(p.name for p in (run / "checkpoints").glob("*.index"))[-1] == "ckpt-9.index"
    sample("format=npz", "num=8", "ema=false", "checkpoint=9", "seed=1", f"out={tmp_path / 'r9.npz'}")
    assert not np.array_equal(np.load(tmp_path / "r6.npz")["images"], np.load(tmp_path / "r9.npz")["images"])

    # Resume may not change the model; the run folder is left as it was.
    before = sorted(str(p) for p in run.rglob("*"))
    result = ganctl("train", f"resume={run}", "loss=lsgan", cwd=tmp_path)
    assert result.returncode == 2 and "loss=lsgan cannot be changed" in result.stderr
    assert sorted(str(p) for p in run.rglob("*")) == before


def test_multirun_gives_each_job_its_folder_and_a_summary_and_finishes_after_a_failure(tmp_path):
    """One sweep: the mlp jobs train, the dcgan jobs fail (dcgan needs image data), and every
    job still runs. (Sweeps where every job succeeds exit 0: tests/test_report.py, test_eval.py.)"""
    sweep = tmp_path / "sweep"
    result = ganctl("train", "-m", "dataset=ring", "model=mlp,dcgan", "loss=ns,hinge",
                    "train.steps=2", "dataset.size=256", "model.generator.width=8",
                    "model.discriminator.width=8", "train.batch_size=16",
                    f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert result.returncode == 1
    assert "2 ok, 2 failed" in result.stdout
    assert "dcgan needs image data" in " ".join(result.stdout.split())
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir())
    assert len(jobs) == 4
    ok = [job for job in jobs if "mlp" in job.name]
    assert len(ok) == 2 and all((job / "checkpoints" / "ckpt-2.index").is_file() for job in ok)


def test_a_run_saved_with_the_old_flat_dataset_node_resumes_with_its_values(compose_cfg,
                                                                            tmp_path):
    """Before each dataset option had its own schema, config.yaml listed every dataset setting
    (path, resolution, ..., std, size) for every dataset; such a run resumes, keeping its own."""
    from omegaconf import OmegaConf

    from ganctl.training.loop import train

    run = tmp_path / "run"
    run.mkdir()
    # The first 5 steps in this process; the resume, which reads config.yaml, is the real command.
    train(compose_cfg(["dataset=grid", "model=mlp", "dataset.size=3000", "train.log_every=5",
                       "train.checkpoint_every=5", "train.steps=5"]), run)
    saved = OmegaConf.load(run / "config.yaml")
    old_form = {"_target_": saved.dataset._target_, "path": None, "resolution": None,
                "channels": None, "on_bad_file": "skip", "labels": False, "limit": None,
                "std": 0.05, "size": 3000, "source": saved.dataset.source}
    saved.dataset = old_form
    OmegaConf.save(saved, run / "config.yaml")
    result = ganctl("train", f"resume={run}", "train.steps=10", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    resumed = OmegaConf.load(run / "config.yaml").dataset
    assert (resumed.size, resumed.std) == (3000, 0.05) and "resolution" not in resumed
    assert json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])["step"] == 10
