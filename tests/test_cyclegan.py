"""CycleGAN's parts: the ResNet generator, the fake-image history pool and the objective, on
real tiny Keras models at 32x32."""
from __future__ import annotations

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from ganctl.core.image_pool import ImagePool
from ganctl.errors import UserError
from ganctl.losses.cyclegan import CycleGAN
from ganctl.models.cyclegan import build_generator

SHAPE = (32, 32, 3)


def tiny_generator(name: str, **options) -> keras.Model:
    options = {"width": 4, "blocks": 1, **options}
    generator = build_generator(image_shape=SHAPE, **options)
    generator.name = name
    return generator


def tiny_critic(name: str) -> keras.Model:
    """A patch critic small enough for the tests: (B, 32, 32, 3) -> (B, 8, 8, 1) raw logits."""
    images = keras.Input(shape=SHAPE)
    x = keras.layers.Conv2D(4, 4, strides=2, padding="same")(images)
    x = keras.layers.LeakyReLU(negative_slope=0.2)(x)
    logits = keras.layers.Conv2D(1, 4, strides=2, padding="same")(x)
    return keras.Model(images, logits, name=name)


def random_images(seed: int, batch: int = 2, shape=SHAPE):
    return tf.constant(np.random.default_rng(seed).uniform(-1, 1, (batch, *shape)), tf.float32)


# --- generator -------------------------------------------------------------------------------

def count_layers(model, kind) -> int:
    return sum(isinstance(layer, kind) for layer in model.layers)


@pytest.mark.parametrize("resolution,blocks", [(32, 6), (128, 6), (256, 9)])
def test_residual_blocks_follow_the_papers_rule(resolution, blocks):
    generator = build_generator(image_shape=(resolution, resolution, 3), width=2)
    assert count_layers(generator, keras.layers.Add) == blocks


def test_translates_at_32x32_and_at_any_size_divisible_by_4():
    generator = tiny_generator("g")
    for shape in (SHAPE, (48, 40, 3)):
        out = generator(random_images(0, shape=shape), training=False)
        assert tuple(out.shape) == (2, *shape) and out.dtype == "float32"
        assert np.abs(out.numpy()).max() <= 1.0


def test_pads_by_reflection_and_normalises_per_instance_without_scale_unless_affine():
    generator = tiny_generator("g")
    pads = [layer for layer in generator.layers if type(layer).__name__ == "ReflectionPadding2D"]
    assert {layer.padding for layer in pads} == {1, 3}
    norms = [layer for layer in generator.layers
             if isinstance(layer, keras.layers.GroupNormalization)]
    assert norms and all(layer.groups == layer.input.shape[-1] and not layer.weights
                         for layer in norms)  # one group per channel: instance norm
    affine = tiny_generator("g", affine=True)
    assert all(len(layer.trainable_weights) == 2 for layer in affine.layers
               if isinstance(layer, keras.layers.GroupNormalization))
    # Instance norm: each image's channels come out with mean 0 and variance 1 on their own.
    x = random_images(1, shape=(8, 8, 4)) * tf.constant([1.0, 5.0])[:, None, None, None]
    normalised = norms[0](x).numpy()
    np.testing.assert_allclose(normalised.mean(axis=(1, 2)), 0, atol=1e-4)
    np.testing.assert_allclose(normalised.std(axis=(1, 2)), 1, atol=1e-2)


def test_resize_upsampling_has_no_transposed_convolution():
    assert count_layers(tiny_generator("g"), keras.layers.Conv2DTranspose) == 2
    resized = tiny_generator("g", upsampling="resize")
    assert count_layers(resized, keras.layers.Conv2DTranspose) == 0
    assert count_layers(resized, keras.layers.UpSampling2D) == 2
    assert tuple(resized(random_images(0), training=False).shape) == (2, *SHAPE)


def test_a_size_that_does_not_divide_by_4_is_a_user_error():
    with pytest.raises(UserError, match="30x30"):
        build_generator(image_shape=(30, 30, 3), width=2)


# --- history pool ----------------------------------------------------------------------------

def numbered(start: int, count: int):
    """`count` 1x1 images whose single pixel is their number."""
    return tf.reshape(tf.range(start, start + count, dtype=tf.float32), (count, 1, 1, 1))


def test_pool_returns_new_fakes_until_full_then_a_stored_one_half_the_time():
    pool = ImagePool((1, 1, 1), size=50, seed=0)
    query = tf.function(pool.query)
    np.testing.assert_array_equal(query(numbered(0, 50)), numbered(0, 50))  # filling: as given
    returned = np.concatenate([query(numbered(1000 + 4 * i, 4)).numpy().ravel()
                               for i in range(500)])
    new = np.arange(1000, 3000)
    stored_share = np.mean(returned != new)
    # 2000 fair coin flips: the share lies within 0.5 +- 0.035 (3.2 standard deviations).
    assert abs(stored_share - 0.5) < 0.035, stored_share
    # A stored fake returned is an earlier one, and the pool always holds 50 distinct fakes.
    assert np.all(returned[returned != new] < new[returned != new])
    assert len(np.unique(pool.images.numpy())) == 50


def test_pool_resumes_exactly_from_a_checkpoint(tmp_path):
    pool = ImagePool((1, 1, 1), size=5, seed=3)
    pool.query(numbered(0, 7))
    path = tf.train.Checkpoint(pool=pool).save(str(tmp_path / "ckpt"))
    unbroken = [pool.query(numbered(100 + 3 * i, 3)).numpy() for i in range(10)]
    resumed_pool = ImagePool((1, 1, 1), size=5, seed=99)  # a fresh run with another seed
    tf.train.Checkpoint(pool=resumed_pool).restore(path).assert_consumed()
    resumed = [resumed_pool.query(numbered(100 + 3 * i, 3)).numpy() for i in range(10)]
    np.testing.assert_array_equal(unbroken, resumed)


def test_pool_of_size_0_is_off():
    batch = numbered(0, 3)
    np.testing.assert_array_equal(ImagePool((1, 1, 1), size=0).query(batch), batch)


# --- objective -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def networks():
    return (tiny_generator("generator_ab"), tiny_generator("generator_ba"),
            tiny_critic("discriminator_a"), tiny_critic("discriminator_b"))


def test_both_cycle_terms_give_gradients_to_both_generators(networks):
    generator_ab, generator_ba, discriminator_a, discriminator_b = networks
    with tf.GradientTape(persistent=True) as tape:
        _, parts, _, _ = CycleGAN().generators_loss(*networks, random_images(0), random_images(1))
    for term in ("cycle_a", "cycle_b"):
        for generator in (generator_ab, generator_ba):
            grads = tape.gradient(parts[term], generator.trainable_variables)
            assert all(g is not None for g in grads), (term, generator.name)
            assert sum(float(tf.reduce_sum(tf.abs(g))) for g in grads) > 0, (term, generator.name)
    # The adversarial terms train only the generator they judge, never the critics here.
    assert all(g is None for g in tape.gradient(parts["adversarial_ab"],
                                                generator_ba.trainable_variables))


def test_objective_matches_the_authors_weighting(networks):
    generator_ab, generator_ba, discriminator_a, discriminator_b = networks
    real_a, real_b = random_images(2), random_images(3)
    loss = CycleGAN(cycle_weight=10.0, identity_weight=0.5)
    total, parts, fake_a, fake_b = loss.generators_loss(*networks, real_a, real_b, training=False)

    def run(network, x):
        return network(x, training=False).numpy().astype("float64")

    a, b = real_a.numpy(), real_b.numpy()
    expected = {
        "adversarial_ab": np.mean((run(discriminator_b, run(generator_ab, a)) - 1) ** 2),
        "adversarial_ba": np.mean((run(discriminator_a, run(generator_ba, b)) - 1) ** 2),
        "cycle_a": 10 * np.mean(np.abs(run(generator_ba, run(generator_ab, a)) - a)),
        "cycle_b": 10 * np.mean(np.abs(run(generator_ab, run(generator_ba, b)) - b)),
        "identity_a": 5 * np.mean(np.abs(run(generator_ba, a) - a)),
        "identity_b": 5 * np.mean(np.abs(run(generator_ab, b) - b)),
    }
    assert set(parts) == set(expected)
    for name, value in expected.items():
        np.testing.assert_allclose(float(parts[name]), value, rtol=1e-4, err_msg=name)
    np.testing.assert_allclose(float(total), sum(expected.values()), rtol=1e-4)
    np.testing.assert_allclose(fake_b.numpy(), run(generator_ab, a), rtol=1e-5, atol=1e-6)
    # Each discriminator: LSGAN's halved least squares.
    real_logits, fake_logits = np.array([[0.3], [1.2]]), np.array([[0.1], [-0.4]])
    np.testing.assert_allclose(float(loss.discriminator_loss(real_logits, fake_logits)),
                               0.5 * np.mean((real_logits - 1) ** 2)
                               + 0.5 * np.mean(fake_logits ** 2), rtol=1e-6)


def test_identity_weight_0_drops_the_identity_terms(networks):
    _, parts, _, _ = CycleGAN(identity_weight=0.0).generators_loss(
        *networks, random_images(0), random_images(1))
    assert set(parts) == {"adversarial_ab", "adversarial_ba", "cycle_a", "cycle_b"}


# --- a whole run: model=cyclegan dataset=unpaired_folder -------------------------------------

RUN = ["model=cyclegan", "dataset=unpaired_folder", "dataset.resolution=16",
       "dataset.load_size=18", "model.generator.width=2", "model.generator.blocks=1",
       "model.discriminator.width=2", "model.discriminator.depth=2", "train.batch_size=2",
       "train.checkpoint_every=2", "train.deterministic=true", "train.g_lr=1e-3",
       "train.d_lr=4e-3", "train.lr_decay_start=1"]


def cyclegan_config(folder, *overrides):
    from ganctl.validate import check_train_config
    from tests.helpers import TINY, compose

    cfg = compose("train", [*TINY, *RUN, f"dataset.path={folder}", *overrides])
    check_train_config(cfg)
    return cfg


@pytest.fixture(scope="module")
def runs(translation_folders, tmp_path_factory):
    """A run of 4 steps, and a copy of it as it was at step 2 resumed to step 4: shared by the
    tests below."""
    import shutil

    from ganctl.training.loop import train

    cfg = cyclegan_config(translation_folders["unpaired"], "train.steps=4")
    straight = tmp_path_factory.mktemp("straight")
    train(cfg, straight)
    resumed = tmp_path_factory.mktemp("resumed") / "run"
    shutil.copytree(straight, resumed, ignore=shutil.ignore_patterns("ckpt-4.*", "checkpoint"))
    train(cfg, resumed, resuming=True)
    return {"straight": straight, "resumed": resumed}


def checkpoint_values(run, step: int) -> dict:
    reader = tf.train.load_checkpoint(str(run / "checkpoints" / f"ckpt-{step}"))
    return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()
            if not name.startswith("_CHECKPOINTABLE_OBJECT_GRAPH")}


def checkpoint_objects(run, step: int) -> set[str]:
    """The names of the objects at the top of a checkpoint's object graph."""
    from tensorflow.core.protobuf import trackable_object_graph_pb2

    reader = tf.train.load_checkpoint(str(run / "checkpoints" / f"ckpt-{step}"))
    graph = trackable_object_graph_pb2.TrackableObjectGraph()
    graph.ParseFromString(reader.get_tensor("_CHECKPOINTABLE_OBJECT_GRAPH"))
    return {child.local_name for child in graph.nodes[0].children}


def test_the_checkpoint_holds_four_networks_their_optimizers_and_both_pools(runs):
    names = checkpoint_objects(runs["straight"], 4)
    assert {"generator", "generator_ba", "discriminator", "discriminator_a", "g_optimizer",
            "d_optimizer", "generator_ba_optimizer", "discriminator_a_optimizer",
            "ema_generator", "ema_generator_ba", "pool_discriminator",
            "pool_discriminator_a"} <= names
    values = checkpoint_values(runs["straight"], 4)
    stored = [v for k, v in values.items() if k.startswith("pool_") and "stored" in k]
    assert sorted(int(s) for s in stored) == [8, 8]  # 4 steps x batch 2 fakes, in each pool


def test_all_four_networks_train_and_resume_is_exact_pools_and_schedule_included(runs):
    at_2, straight, resumed = (checkpoint_values(runs[name], step) for name, step in (
        ("straight", 2), ("straight", 4), ("resumed", 4)))
    assert straight.keys() == resumed.keys()
    for name in straight:
        np.testing.assert_array_equal(straight[name], resumed[name], err_msg=name)
    # Each network's weights (saved under its optimizer's variables) moved from step 2 to 4.
    for optimizer in ("g_optimizer", "generator_ba_optimizer", "d_optimizer",
                      "discriminator_a_optimizer"):
        weights = [k for k in straight if k.startswith(f"{optimizer}/_trainable_variables/")]
        assert weights and any(not np.array_equal(straight[k], at_2[k]) for k in weights), optimizer


def test_every_optimizer_follows_the_decay_to_zero(runs):
    """lr_decay_start=1 of 4 steps: updates 0-1 at the base rate, then 2/3 and 1/3 of it, and
    the schedule is at 0 when the run ends, for all four networks (not only the usual pair)."""
    from ganctl.training.lr_schedule import lr_scale

    def rates(step):
        values = checkpoint_values(runs["straight"], step)
        return {k.split("/")[0]: float(v) for k, v in values.items()
                if "learning_rate" in k and "optimizer" in k}

    base = {"g_optimizer": 1e-3, "generator_ba_optimizer": 1e-3, "d_optimizer": 4e-3,
            "discriminator_a_optimizer": 4e-3}
    assert rates(2) == pytest.approx(base)  # the rate of update 1
    assert rates(4) == pytest.approx({k: v / 3 for k, v in base.items()})  # update 3
    assert float(lr_scale(np.int64(4), 4, 1)) == 0.0


def test_snapshots_are_a_to_b_to_a_and_b_to_a_to_b_rows(runs, translation_folders):
    from PIL import Image

    test_images = len(list((translation_folders["unpaired"] / "testA").iterdir()))
    rows = 2 * test_images  # each test A image, then each test B image
    with Image.open(runs["straight"] / "samples" / "step_000004.png") as grid:
        assert grid.size == (3 * (16 + 2) + 2, rows * (16 + 2) + 2)
    metrics = (runs["straight"] / "metrics.jsonl").read_text().splitlines()
    last = json.loads(metrics[-1])
    assert last["step"] == 4 and last["cycle_a"] > 0 and last["identity_b"] > 0


def test_eval_scores_a_direction_with_its_cycle_reconstruction_error(runs):
    from ganctl.evaluation.runs import evaluate_run
    from tests.helpers import compose

    for direction in ("AtoB", "BtoA"):
        cfg = compose("eval", [f"run={runs['straight']}", "features=pixels", "metrics=[kid]",
                               f"direction={direction}"])
        result = evaluate_run(runs["straight"], cfg)
        assert result["direction"] == direction and result["paired"] is False
        assert 0 < result["metrics"]["cycle_l1"] < 2 and "kid" in result["metrics"]


def test_sample_translates_a_folder_both_ways_through_the_cli(runs, translation_folders, tmp_path):
    from tests.helpers import ganctl

    source = translation_folders["unpaired"] / "testB"
    done = ganctl("sample", f"run={runs['straight']}", f"input={source}", "direction=BtoA",
                  f"out={tmp_path / 'ba'}", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in (tmp_path / "ba").iterdir()) == sorted(
        p.with_suffix(".png").name for p in source.iterdir())


def test_another_loss_is_refused_in_one_paragraph(translation_folders):
    with pytest.raises(UserError) as caught:
        cyclegan_config(translation_folders["unpaired"], "loss=hinge")
    assert "loss=hinge" in str(caught.value) and "\n" not in str(caught.value)
