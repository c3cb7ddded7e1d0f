"""Image-to-image translation (issue 15): the two-domain datasets, pix2pix's networks and losses,
and a tiny pix2pix run trained, resumed, sampled and scored, on 32x32 folders the tests write."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from ganctl.errors import UserError
from tests.conftest import write_translation_folders
from tests.helpers import CONF, TINY, ganctl, translation_choices

TRANSLATION_MODELS, _ = translation_choices()
SMALL = {"resolution": 32, "load_size": 36}


def paired(path, **settings):
    from ganctl.datasets.paired_folder import PairedFolder

    return PairedFolder(str(path), **{**SMALL, **settings})


def stream(dataset, count: int, seed: int = 0, skip: int = 0, batch: int = 1):
    """The first `count` examples of the training stream, as numpy (a, b) pairs."""
    pairs = dataset.tf_dataset(batch, seed=seed, skip=skip).unbatch().take(count)
    return [(a.numpy(), b.numpy()) for a, b in pairs]


# --- Data -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("layout", ["side_by_side", "folders"])
def test_both_paired_layouts_give_aligned_pairs_cropped_and_flipped_together(
        translation_folders, layout):
    dataset = paired(translation_folders[layout])
    a, b = next(iter(dataset.tf_dataset(4, seed=0)))
    assert a.shape == b.shape == (4, 32, 32, 3) and dataset.image_shape == (32, 32, 3)
    # B is A's negative in the files, so one crop and flip for both halves keeps b == -a.
    np.testing.assert_allclose(b.numpy(), -a.numpy(), atol=1e-5)
    assert -1 <= a.numpy().min() and a.numpy().max() <= 1
    test_a, test_b = dataset.pairs("test")
    assert test_a.shape == (3, 32, 32, 3) and test_a.dtype == np.uint8  # the test folder's 3
    np.testing.assert_allclose(test_b.astype(int), 255 - test_a.astype(int), atol=1)
    assert "6 pairs" in dataset.source and "test split 3" in dataset.source


def test_a_file_without_its_partner_is_named(tmp_path):
    root = write_translation_folders(tmp_path)["folders"]
    (root / "B" / "002.png").unlink()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(root / "B" / "extra.png")
    with pytest.raises(UserError, match=r"2 image\(s\) have no partner.*A/002\.\*.*B/extra\.\*"):
        paired(root).split("train")


def test_augmentation_is_redrawn_every_epoch_and_is_a_function_of_the_position(tmp_path):
    """A one-pair dataset: each example is a new epoch, so its crops and flips must differ
    (the tutorials' cache() after the random jitter freezes them), yet the stream from any
    position is the same on every pass, which exact resume needs."""
    root = tmp_path / "one" / "train"
    root.mkdir(parents=True)
    pixels = np.random.default_rng(0).integers(0, 256, (40, 40, 3), np.uint8)
    Image.fromarray(np.concatenate([pixels, pixels], 1)).save(root / "0.png")
    dataset = paired(root.parent, load_size=40)
    epochs = stream(dataset, 6)
    assert len({a.tobytes() for a, _ in epochs}) > 1
    assert all(np.array_equal(a, b) for a, b in epochs)  # the two halves, identically
    again = stream(dataset, 3, skip=3)
    assert all(np.array_equal(x[0], y[0]) for x, y in zip(epochs[3:], again))


def test_unpaired_epochs_follow_the_larger_domain(translation_folders):
    from ganctl.datasets.unpaired_folder import UnpairedFolder

    dataset = UnpairedFolder(str(translation_folders["unpaired"]), **SMALL)
    files = dataset.split("train")
    assert (len(files.a), len(files.b)) == (6, 4)
    one_pass = list(dataset.tf_dataset(1, seed=0, repeat=False))
    assert len(one_pass) == 6  # not cut to B's 4: B's images come round again
    assert one_pass[0][0].shape == one_pass[0][1].shape == (1, 32, 32, 3)
    assert len(dataset.pairs("test")[0]) == 2


def test_grey_and_missing_domains(translation_folders, tmp_path):
    from ganctl.datasets.unpaired_folder import UnpairedFolder

    a, b = next(iter(paired(translation_folders["side_by_side"], channels=1).tf_dataset(2, 0)))
    assert a.shape == b.shape == (2, 32, 32, 1)
    with pytest.raises(UserError, match="A/ and B/"):
        UnpairedFolder(str(tmp_path), **SMALL).split("train")


@pytest.mark.parametrize("overrides, match", [
    (["model=pix2pix", "dataset=mnist"], "needs two domains"),
    (["model=dcgan", "dataset=paired_folder"], "holds two image domains"),
    (["model=pix2pix", "dataset=unpaired_folder"], "aligned pairs"),
    (["model=pix2pix", "dataset=paired_folder", "loss=wgan_gp"], "d_steps_per_g_step=5"),
    (["model=pix2pix", "dataset=paired_folder", "loss.g_steps_per_d_step=2"],
     "g_steps_per_d_step=2 has no meaning"),
    (["model=pix2pix", "dataset=paired_folder", "train.g_batch_size=1"],
     "g_batch_size=1 has no meaning"),
    (["model=pix2pix", "dataset=paired_folder", "dataset.load_size=16"], "load_size=16"),
])
def test_mismatched_choices_are_refused_before_anything_is_built(overrides, match, compose_cfg):
    with pytest.raises(UserError, match=match):
        compose_cfg([*overrides, "dataset.path=/nowhere"] if "mnist" not in overrides[1]
                    else overrides)


@pytest.mark.parametrize("dataset, kind, recipe", [("paired_folder", "pix2pix", None),
                                                     ("unpaired_folder", "cyclegan",
                                                      "unpaired_folder_cyclegan")])
def test_a_two_domain_dataset_alone_picks_its_model(dataset, kind, recipe, compose_cfg):
    cfg = compose_cfg([f"dataset={dataset}", "dataset.path=/nowhere", "train.steps=10"])
    assert cfg.model.translation.kind == kind and cfg.recipe == recipe
    # CycleGAN's default schedule: constant for half the run, then linear to 0.
    assert cfg.train.lr_decay_start == (5 if kind == "cyclegan" else None)


# --- Networks and losses --------------------------------------------------------------------------

@pytest.mark.parametrize("model", TRANSLATION_MODELS)
@pytest.mark.parametrize("upsampling", ["transposed", "resize"])
def test_generators_keep_the_shape_at_any_multiple_and_leaky_slopes_are_0_2(model, upsampling):
    import keras

    from ganctl.config import ModelConfig
    from ganctl.core.components import build_translation_networks
    from ganctl.core.translation import size_multiple
    from tests.helpers import shipped_node

    node = shipped_node(ModelConfig, CONF / "model" / f"{model}.yaml",
                        {"generator": {"width": 4, "upsampling": upsampling},
                         "discriminator": {"width": 4}})

    class Data:
        image_shape = (32, 32, 3)

    networks = build_translation_networks(node, Data)
    generator = networks["generator"]
    assert generator(np.zeros((2, 32, 32, 3), np.float32)).shape == (2, 32, 32, 3)
    assert generator(np.zeros((1, 64, 96, 3), np.float32)).shape == (1, 64, 96, 3)
    # The U-Net halves 5 times at 32x32; CycleGAN's ResNet generator twice.
    assert size_multiple(generator) == {"pix2pix": 32, "cyclegan": 4}[model]
    transposed = [layer for layer in generator.layers
                  if isinstance(layer, keras.layers.Conv2DTranspose)]
    assert bool(transposed) == (upsampling == "transposed")
    # Keras' LeakyReLU() defaults to 0.3, the TF pix2pix tutorial's slip; the papers use 0.2.
    leaky = [layer for network in networks.values() for layer in network.layers
             if isinstance(layer, keras.layers.LeakyReLU)]
    assert leaky and all(abs(layer.negative_slope - 0.2) < 1e-9 for layer in leaky)


def test_unet_drops_half_the_units_in_the_three_inner_decoder_blocks():
    from ganctl.models.pix2pix import build_generator

    generator = build_generator(image_shape=(32, 32, 3), width=4)
    dropout = [layer for layer in generator.layers if "dropout" in layer.name]
    assert [layer.name for layer in dropout] == ["up1_dropout", "up2_dropout", "up3_dropout"]
    assert all(layer.rate == 0.5 for layer in dropout)


def test_patchgan_logit_sees_a_70x70_patch():
    """Measured, not computed: the input pixels that move one output logit. Instance norm's
    statistics reach every pixel a little, so the convolutions are measured without it."""
    import keras
    import tensorflow as tf

    from ganctl.models.patchgan import build_discriminator, receptive_field

    discriminator = build_discriminator(image_shape=(128, 128, 1), width=2, depth=3)
    images = tf.random.normal((1, 128, 128, 1))
    with tf.GradientTape() as tape:
        tape.watch(images)
        x = images
        for layer in discriminator.layers[1:]:
            x = x if isinstance(layer, keras.layers.GroupNormalization) else layer(x)
        centre = x[0, x.shape[1] // 2, x.shape[2] // 2, 0]
    rows = np.nonzero(np.abs(tape.gradient(centre, images).numpy()[0, :, :, 0]).sum(1))[0]
    assert rows.max() - rows.min() + 1 == receptive_field(3) == 70


def test_d_loss_is_halved_and_g_adds_100_times_l1():
    """Against numpy's BCE: the TF pix2pix tutorial sums D's real and fake terms unhalved."""
    from types import SimpleNamespace

    from ganctl.losses.ns import NonSaturating
    from ganctl.training.translation_step import pix2pix_d_loss, pix2pix_g_loss

    rng = np.random.default_rng(0)
    real, fake = rng.normal(size=(2, 4, 4, 1)), rng.normal(size=(2, 4, 4, 1))
    out, target = rng.uniform(-1, 1, (2, 8, 8, 3)), rng.uniform(-1, 1, (2, 8, 8, 3))
    softplus = lambda x: np.log1p(np.exp(x))  # noqa: E731
    translation = SimpleNamespace(d_loss_scale=0.5, l1_weight=100.0)
    loss = NonSaturating()
    d_loss = pix2pix_d_loss(loss, translation, real.astype("float32"), fake.astype("float32"))
    expected = 0.5 * (softplus(-real).mean() + softplus(fake).mean())
    assert float(d_loss) == pytest.approx(expected, rel=1e-5)
    g_loss, l1 = pix2pix_g_loss(loss, translation, fake.astype("float32"), out, target)
    assert float(l1) == pytest.approx(np.abs(out - target).mean(), rel=1e-5)
    assert float(g_loss) == pytest.approx(softplus(-fake).mean() + 100 * float(l1), rel=1e-5)


def test_the_step_reports_the_halved_d_loss_of_the_networks_it_updates(compose_cfg,
                                                                       data_overrides):
    """The halving happens in the compiled step: its d_loss is half the BCE of D's logits on
    (a, b) and (a, G(a)) before the update (dropout off, so G(a) is reproducible)."""
    import keras

    from ganctl.core.components import build_dataset
    from ganctl.core.state import build_training_state
    from ganctl.training.translation_step import make_translation_step

    cfg = compose_cfg(["model=pix2pix", "dataset=paired_folder", "model.generator.dropout=0",
                       "train.ema=0", *data_overrides["paired_folder"]])
    dataset = build_dataset(cfg.dataset)
    state = build_training_state(cfg, dataset)
    a, b = next(iter(dataset.tf_dataset(8, seed=0)))
    judge = lambda x, y: keras.ops.convert_to_numpy(  # noqa: E731
        state.discriminator(keras.ops.concatenate([x, y], -1), training=True))
    real, fake = judge(a, b), judge(a, state.generator(a, training=True))
    values = make_translation_step(state)(a, b)
    softplus = lambda x: np.log1p(np.exp(x))  # noqa: E731
    expected = 0.5 * (softplus(-real).mean() + softplus(fake).mean())
    assert float(values["d_loss"]) == pytest.approx(expected, rel=1e-4)
    assert int(state.step.numpy()) == 1 and float(values["l1"]) > 0


# --- A tiny pix2pix run: train, resume, sample, eval ---------------------------------------------

RUN = [*TINY, "model=pix2pix", "dataset=paired_folder", "train.steps=4",
       "train.checkpoint_every=2", "train.sample_every=2", "train.deterministic=true"]


@pytest.fixture(scope="module")
def pix2pix_run(tmp_path_factory, data_overrides):
    from ganctl.training.loop import train
    from ganctl.validate import check_train_config
    from tests.helpers import compose

    run = tmp_path_factory.mktemp("pix2pix")
    cfg = compose("train", [*RUN, *data_overrides["paired_folder"]])
    check_train_config(cfg)
    train(cfg, run)
    return run


def test_the_run_keeps_checkpoints_metrics_and_comparison_snapshots(pix2pix_run):
    rows = [json.loads(line) for line in (pix2pix_run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    assert all(np.isfinite(r["l1"]) and np.isfinite(r["d_loss"]) for r in rows)
    assert sorted(p.name for p in (pix2pix_run / "checkpoints").glob("*.index")) == [
        "ckpt-2.index", "ckpt-4.index"]
    # Rows of input | output | target (3 columns of 32 px with 2 px gaps), one per test pair.
    with Image.open(pix2pix_run / "samples" / "step_000004.png") as grid:
        assert grid.size == (3 * 34 + 2, 3 * 34 + 2)
    with Image.open(pix2pix_run / "reals.png") as reals:
        assert reals.size[0] == 2 * 34 + 2  # input | target


def test_resume_continues_exactly(pix2pix_run, tmp_path, data_overrides):
    """4 steps in one go == 2 steps, then resume to 4: every checkpointed tensor."""
    import tensorflow as tf

    from ganctl.commands.train import _config_for_resume
    from ganctl.training.loop import train
    from ganctl.validate import check_train_config
    from tests.helpers import compose

    halves = tmp_path / "halves"
    shutil.copytree(pix2pix_run, halves)
    for path in (halves / "checkpoints").glob("ckpt-4*"):
        path.unlink()
    cfg = compose("train", [*RUN, *data_overrides["paired_folder"], f"resume={halves}"])
    check_train_config(cfg)
    train(_config_for_resume(cfg, halves), halves, resuming=True)

    def tensors(run):
        reader = tf.train.load_checkpoint(str(run / "checkpoints" / "ckpt-4"))
        return {k: reader.get_tensor(k) for k in reader.get_variable_to_shape_map()
                if "save_counter" not in k and k != "_CHECKPOINTABLE_OBJECT_GRAPH"}

    whole, resumed = tensors(pix2pix_run), tensors(halves)
    assert whole.keys() == resumed.keys() and any(k.startswith("g_optimizer/") for k in whole)
    assert [k for k in whole if not np.array_equal(whole[k], resumed[k])] == []


def test_sample_translates_a_folder_at_its_own_sizes_through_the_cli(pix2pix_run, tmp_path):
    inputs = tmp_path / "inputs"
    (inputs / "nested").mkdir(parents=True)
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(inputs / "small.jpg")
    Image.fromarray(np.full((64, 96), 200, np.uint8)).save(inputs / "nested" / "wide.png")
    out = tmp_path / "out"
    result = ganctl("sample", f"run={pix2pix_run}", f"input={inputs}", f"out={out}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    with Image.open(out / "small.png") as small, Image.open(out / "nested" / "wide.png") as wide:
        assert (small.size, wide.size, wide.mode) == ((32, 32), (96, 64), "RGB")
    # Refusals (in-process: the CLI's one-paragraph error is tested for every UserError).
    from ganctl.commands.sample import run as sample
    from tests.helpers import compose

    with pytest.raises(UserError, match="overwrite=true"):  # would replace the files just made
        sample(compose("sample", [f"run={pix2pix_run}", f"input={inputs}", f"out={out}"]))
    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(tmp_path / "odd.png")
    with pytest.raises(UserError, match="is 40x40.*multiples of 32"):
        sample(compose("sample", [f"run={pix2pix_run}", f"input={tmp_path / 'odd.png'}",
                                  f"out={tmp_path / 'odd_out'}"]))


def test_sample_default_is_a_test_split_comparison_grid(pix2pix_run):
    from ganctl.commands.sample import run as sample
    from tests.helpers import compose

    out = sample(compose("sample", [f"run={pix2pix_run}"]))
    with Image.open(out) as grid:
        assert grid.size == (3 * 34 + 2, 3 * 34 + 2)
    with pytest.raises(UserError, match="AtoB"):
        sample(compose("sample", [f"run={pix2pix_run}", "direction=BtoA"]))


def test_eval_records_distribution_and_paired_pixel_metrics(pix2pix_run):
    from ganctl.commands.evaluate import run as evaluate
    from tests.helpers import compose

    result = evaluate(compose("eval", [f"run={pix2pix_run}", "features=pixels",
                                       "metrics=[kid]"]))
    saved = json.loads((pix2pix_run / "eval" / "metrics.json").read_text())
    assert set(saved["metrics"]) == {"kid", "kid_std", "l1", "psnr", "ssim"}
    assert saved["metrics"] == result["metrics"] and saved["checkpoint_step"] == 4
    assert 0 < saved["metrics"]["l1"] < 2 and saved["metrics"]["psnr"] > 0
    assert -1 <= saved["metrics"]["ssim"] <= 1
    assert saved["num_fake"] == 3 and saved["real_split"] == "test" and "_test_" in result["written"]
    assert any("fewer than about 2,000" in note for note in saved["notes"])
