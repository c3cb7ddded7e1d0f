"""SNGAN, spectral normalisation, the R1 penalty and DiffAugment: values from independent formulas."""
from __future__ import annotations

import inspect

import keras
import numpy as np
import pytest
import tensorflow as tf
from omegaconf import OmegaConf

from ganctl import registry
from ganctl.config import NetworkConfig
from ganctl.errors import UserError
from ganctl.models import dcgan, mlp, sngan
from ganctl.training.augment import make_augment
from tests.helpers import CONF, build_loss, linear_critic

LOSS_FILES = sorted((CONF / "loss").glob("*.yaml"))


def kernel_layers(model):
    """Top-level layers that own a kernel, and the spectral-norm wrappers."""
    plain = [layer for layer in model.layers if isinstance(layer, (keras.layers.Conv2D,
                                                                   keras.layers.Dense))]
    wrapped = [layer for layer in model.layers
               if isinstance(layer, keras.layers.SpectralNormalization)]
    return plain, wrapped


def top_singular_value(kernel) -> float:
    """The spectral norm SN controls: of the kernel as a (fan_in, out) matrix, as in the paper."""
    matrix = np.asarray(kernel).reshape(-1, kernel.shape[-1])
    return float(np.linalg.svd(matrix, compute_uv=False)[0])


# --- SNGAN -----------------------------------------------------------------------------------

@pytest.mark.parametrize("image_shape,ups", [((32, 32, 3), 3), ((64, 64, 3), 4)])
def test_sngan_builds_with_spectral_norm_on_every_d_layer(image_shape, ups):
    generator = sngan.build_generator(z_dim=16, image_shape=image_shape, width=8)
    discriminator = sngan.build_discriminator(image_shape=image_shape, width=8)
    assert generator(np.zeros((2, 16), "float32")).shape == (2, *image_shape)
    assert discriminator(np.zeros((2, *image_shape), "float32")).shape == (2, 1)
    # From the 4x4 base, one ResBlock-up per doubling; D down to 8x8, then two plain blocks.
    assert [layer.name for layer in generator.layers if layer.name.startswith("up")
            and isinstance(layer, keras.layers.Add)] == [f"up{i + 1}" for i in range(ups)]
    assert discriminator.get_layer("block2").output.shape[1:3] == (8, 8)
    plain, wrapped = kernel_layers(discriminator)
    # 2 convs + a 1x1 shortcut per downsampling block, 2 convs per plain block, the final dense.
    assert plain == [] and len(wrapped) == 3 * (ups - 1) + 2 * 2 + 1


@pytest.mark.parametrize("image_shape", [(2,), (100, 100, 3), (27, 27, 3)])
def test_sngan_refuses_other_data_naming_the_resolution(image_shape):
    with pytest.raises(UserError, match="resolution") as err:
        sngan.build_discriminator(image_shape=image_shape, width=8)
    assert "x".join(map(str, image_shape[:2])) in str(err.value) or "image data" in str(err.value)


def test_sngan_experiment_is_the_papers_recipe(compose_cfg):
    cfg = compose_cfg(["experiment=sngan"])
    assert cfg.model.generator._target_.startswith("ganctl.models.sngan.")
    assert cfg.loss._target_ == "ganctl.losses.hinge.Hinge" and cfg.loss.d_steps_per_g_step == 5
    t = cfg.train
    assert (t.g_lr, t.d_lr, t.g_beta1, t.g_beta2, t.d_beta1, t.d_beta2) == (2e-4, 2e-4, 0, 0.9, 0, 0.9)


def test_sngan_trains_checkpoints_resumes_and_exports(compose_cfg, data_overrides, tmp_path):
    from ganctl.training.loop import train

    # MNIST's 28x28 (a 7x7 base) traces fastest; test_train covers the other datasets.
    overrides = ["model=sngan", "dataset=mnist", "loss=hinge", *data_overrides["mnist"]]
    train(compose_cfg([*overrides, "train.steps=2"]), tmp_path)
    checkpoint = tf.train.latest_checkpoint(str(tmp_path / "checkpoints"))
    assert checkpoint.endswith("ckpt-2")
    # SN's power-iteration vectors are state too: a resume must continue from them.
    assert any("vector_u" in name for name, _ in tf.train.list_variables(checkpoint))
    assert train(compose_cfg([*overrides, "train.steps=3"]), tmp_path, resuming=True)["step"] == 3
    generator = keras.saving.load_model(tmp_path / "generator.keras", safe_mode=True)
    assert generator.output_shape[1:] == (28, 28, 1)


# --- Spectral normalisation -------------------------------------------------------------------

@pytest.mark.parametrize("build", [dcgan.build_discriminator, mlp.build_discriminator,
                                   sngan.build_discriminator], ids=["dcgan", "mlp", "sngan"])
def test_spectral_norm_makes_every_kernel_1_lipschitz(build):
    kwargs = {"spectral_norm": True} if build is not sngan.build_discriminator else {}
    discriminator = build(image_shape=(32, 32, 3), width=8, **kwargs)
    plain, wrapped = kernel_layers(discriminator)
    assert plain == [] and wrapped
    # Scale the kernels far from norm 1, so the check below cannot pass by initialisation.
    for layer in wrapped:
        layer.layer.kernel.assign(5.0 * layer.layer.kernel)
    assert all(top_singular_value(layer.layer.kernel) > 2 for layer in wrapped)
    images = np.random.default_rng(0).uniform(-1, 1, (4, 32, 32, 3)).astype("float32")
    step = tf.function(lambda x: discriminator(x, training=True))  # as in the training step
    for _ in range(50):  # one power iteration per training call
        step(images)
    for layer in wrapped:
        np.testing.assert_allclose(top_singular_value(layer.layer.kernel), 1.0, rtol=0.01)


def test_spectral_norm_is_off_by_default_and_refused_where_unused():
    _, wrapped = kernel_layers(dcgan.build_discriminator(image_shape=(28, 28, 1), width=8))
    assert wrapped == []
    node = OmegaConf.create({"_target_": "ganctl.models.dcgan.build_generator",
                             "spectral_norm": True})
    with pytest.raises(UserError, match="spectral_norm=True has no effect"):
        registry.build(node, "model.generator", NetworkConfig, z_dim=8, image_shape=(28, 28, 1))


def test_spectral_norm_keeps_float32_kernels_under_bfloat16():
    """Keras' wrapper writes W / sigma back each call; in bf16 it would round the kernel."""
    from ganctl.core.state import dtype_policy

    with dtype_policy("mixed_bfloat16"):
        discriminator = mlp.build_discriminator(image_shape=(2,), width=16, spectral_norm=True)
    discriminator(np.ones((4, 2), "float32"), training=True)
    kernel = discriminator.get_layer("dense0_sn").layer.kernel.numpy()
    as_bf16 = tf.cast(tf.cast(kernel, tf.bfloat16), tf.float32).numpy()
    assert kernel.dtype == np.float32 and np.any(kernel != as_bf16)


def test_spectral_norm_discriminator_saves_and_loads_in_safe_mode(tmp_path):
    discriminator = sngan.build_discriminator(image_shape=(32, 32, 3), width=8)
    images = np.random.default_rng(1).uniform(-1, 1, (2, 32, 32, 3)).astype("float32")
    discriminator(images, training=True)
    discriminator.save(tmp_path / "d.keras")
    loaded = keras.saving.load_model(tmp_path / "d.keras", safe_mode=True)
    np.testing.assert_allclose(loaded(images).numpy(), discriminator(images).numpy(), rtol=1e-5)


def test_spectral_norm_option_trains(compose_cfg, data_overrides, tmp_path):
    """Through the real loop (dcgan's wrapped D is exercised in tf.function above)."""
    from ganctl.training.loop import train

    cfg = compose_cfg(["model=mlp", "dataset=ring", "train.steps=2",
                       "model.discriminator.spectral_norm=true", *data_overrides["ring"]])
    assert train(cfg, tmp_path)["step"] == 2


# --- R1 penalty -------------------------------------------------------------------------------

@pytest.mark.parametrize("path", LOSS_FILES, ids=lambda p: p.stem)
def test_r1_of_a_linear_critic_adds_to_the_losses_own_penalty(path):
    """R1 = gamma / 2 * ||w||^2 exactly; WGAN-GP adds gp_weight * (||w|| - 1)^2 on top."""
    rng = np.random.default_rng(3)
    weights = rng.normal(size=16)
    weights *= 3.0 / np.linalg.norm(weights)
    real_images = rng.uniform(-1, 1, size=(8, 4, 4, 1)).astype("float32")
    fake_images = rng.uniform(-1, 1, size=(8, 4, 4, 1)).astype("float32")
    loss = build_loss(path, r1_weight=2.0)
    assert loss.r1_weight == 2.0
    penalty = loss.penalty(linear_critic(weights), real_images, fake_images,
                           keras.random.SeedGenerator(0))
    expected = 2.0 / 2 * 3.0 ** 2 + loss.gp_weight * (3.0 - 1.0) ** 2
    np.testing.assert_allclose(float(penalty), expected, rtol=1e-4)


def test_r1_sees_only_real_images():
    """D(x) = sum(x^2) / 2 has grad x: R1 is gamma / 2 * mean ||x_real||^2, whatever the fakes."""
    inputs = keras.Input(shape=(3,))
    critic = keras.Model(inputs, keras.layers.Lambda(
        lambda x: 0.5 * keras.ops.sum(x ** 2, axis=1, keepdims=True))(inputs))
    real_images = np.random.default_rng(4).normal(size=(6, 3)).astype("float32")
    loss = build_loss(CONF / "loss" / "ns.yaml", r1_weight=0.5)
    for fake_images in (np.zeros_like(real_images), 100 * np.ones_like(real_images)):
        penalty = loss.penalty(critic, real_images, fake_images, keras.random.SeedGenerator(0))
        np.testing.assert_allclose(float(penalty), 0.25 * np.mean(np.sum(real_images ** 2, 1)),
                                   rtol=1e-5)


def test_r1_reaches_the_discriminators_weights_inside_tf_function():
    discriminator = mlp.build_discriminator(image_shape=(2,), width=8, spectral_norm=True)
    loss = build_loss(CONF / "loss" / "hinge.yaml", r1_weight=10.0)
    points = np.random.default_rng(5).normal(size=(8, 2)).astype("float32")
    seed_generator = keras.random.SeedGenerator(0)

    @tf.function
    def gradients(real_images):
        with tf.GradientTape() as tape:
            penalty = loss.penalty(discriminator, real_images, real_images, seed_generator)
        return penalty, tape.gradient(penalty, discriminator.trainable_variables)

    penalty, grads = gradients(points)
    kernels = [g for g, v in zip(grads, discriminator.trainable_variables) if "kernel" in v.path]
    assert float(penalty) > 0 and all(g is not None and np.any(g.numpy() != 0) for g in kernels)


@pytest.mark.parametrize("path", LOSS_FILES, ids=lambda p: p.stem)
def test_lazy_r1_is_k_times_the_penalty_on_every_kth_step_and_absent_between(path):
    """loss.r1_every=4 in a graph without autograph, as the compiled step runs it: R1 = gamma /
    2 * ||w||^2 times 4 on steps 0 and 4, nothing on steps 1-3 (the loss's own penalty stays),
    and D's weights get R1's gradient only on the R1 steps."""
    rng = np.random.default_rng(6)
    weights = rng.normal(size=16)
    weights *= 3.0 / np.linalg.norm(weights)
    images = rng.uniform(-1, 1, size=(8, 4, 4, 1)).astype("float32")
    loss = build_loss(path, r1_weight=2.0, r1_every=4)
    critic = linear_critic(weights)
    own = loss.gp_weight * (3.0 - 1.0) ** 2
    seed_generator = keras.random.SeedGenerator(0)

    @tf.function(autograph=False)
    def penalty_and_gradient(step):
        with tf.GradientTape() as tape:
            penalty = loss.penalty(critic, images, images, seed_generator, step)
        return penalty, tape.gradient(penalty, critic.trainable_variables)[0]

    for step in range(6):
        penalty, gradient = penalty_and_gradient(tf.constant(step, tf.int64))
        r1 = 4 * 2.0 / 2 * 3.0 ** 2 if step % 4 == 0 else 0.0
        np.testing.assert_allclose(float(penalty), r1 + own, rtol=1e-4)
        # d(gamma/2 ||w||^2)/dw = gamma w; the own penalty of WGAN-GP adds its share.
        own_gradient = loss.gp_weight * 2 * (3.0 - 1.0) * weights / 3.0
        expected = (4 * 2.0 * weights if step % 4 == 0 else 0.0) + own_gradient
        np.testing.assert_allclose(np.ravel(gradient), expected, rtol=1e-4, atol=1e-5)


def test_r1_every_without_r1_is_one_paragraph(compose_cfg):
    with pytest.raises(UserError) as caught:
        compose_cfg(["dataset=ring", "loss.r1_every=16"])
    assert "loss.r1_every=16" in str(caught.value) and "\n" not in str(caught.value)


def test_every_loss_accepts_r1_weight_and_checks_it():
    for path in LOSS_FILES:
        assert "r1_weight" in inspect.signature(registry.resolve_target(
            OmegaConf.load(path)._target_, "loss")).parameters, path.stem
        assert build_loss(path).r1_weight == 0.0  # off unless asked for
        with pytest.raises(UserError, match="r1_weight=-1"):
            build_loss(path, r1_weight=-1.0)


def test_r1_with_discriminator_batch_norm_is_refused(compose_cfg):
    # ...naming the override that drops it, since a recipe may have set it.
    with pytest.raises(UserError, match=r"loss.r1_weight=10.0.*\(loss.r1_weight=0\)"):
        compose_cfg(["loss.r1_weight=10", "model.discriminator.batch_norm=true"])


# --- DiffAugment ------------------------------------------------------------------------------

IMAGES = np.random.default_rng(6).uniform(-1, 1, (4, 16, 16, 3)).astype("float32")


@pytest.mark.parametrize("policy", ["color", "translation", "cutout", "color,translation,cutout"])
def test_diffaug_keeps_shape_and_dtype_and_is_seeded(policy):
    for dtype in ("float32", "bfloat16"):
        images = tf.cast(IMAGES, dtype)
        first = make_augment(policy, keras.random.SeedGenerator(1))(images)
        again = make_augment(policy, keras.random.SeedGenerator(1))(images)
        other = make_augment(policy, keras.random.SeedGenerator(2))(images)
        assert first.shape == images.shape and first.dtype == images.dtype
        np.testing.assert_array_equal(first.numpy(), again.numpy())
        assert np.any(first.numpy() != other.numpy()) and np.any(first.numpy() != images.numpy())


@pytest.mark.parametrize("policy", ["color", "translation", "cutout", "color,translation,cutout"])
def test_gradients_flow_through_diffaug(policy):
    images = tf.constant(IMAGES)
    augment = tf.function(make_augment(policy, keras.random.SeedGenerator(0)))
    with tf.GradientTape() as tape:
        tape.watch(images)
        total = tf.reduce_sum(augment(images) * IMAGES)  # a weighted sum, so colour's mean terms don't cancel
    gradient = tape.gradient(total, images)
    assert gradient is not None and np.any(gradient.numpy() != 0)


def test_translation_shifts_with_zero_padding():
    """Each output is its input shifted by at most 1/8 of the size (2 of 16), zeros fill in."""
    out = make_augment("translation", keras.random.SeedGenerator(0))(IMAGES).numpy()
    for image, shifted in zip(IMAGES, out):
        matches = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)
                   if np.array_equal(shifted, _shift(image, dy, dx))]
        assert matches, "not a zero-padded shift of its input"
    assert any(not np.array_equal(a, b) for a, b in zip(IMAGES, out))


def _shift(image, dy, dx):
    padded = np.pad(image, ((2, 2), (2, 2), (0, 0)))
    return padded[2 - dy:18 - dy, 2 - dx:18 - dx]


def test_cutout_zeroes_one_half_size_square_clipped_at_the_edges():
    ones = np.ones((64, 16, 16, 1), "float32")
    out = make_augment("cutout", keras.random.SeedGenerator(0))(ones).numpy()[..., 0]
    for mask in out:
        rows, columns = np.nonzero(mask == 0)
        height, width = np.ptp(rows) + 1, np.ptp(columns) + 1
        assert len(rows) == height * width, "the zeroed pixels form one rectangle"
        assert 4 <= height <= 8 and 4 <= width <= 8  # 8x8, or clipped to at least half of it
    assert np.any(out.sum((1, 2)) == 256 - 64)  # some squares are whole


def test_none_is_identity_and_bad_input_is_a_user_error():
    assert make_augment("none", keras.random.SeedGenerator(0))(IMAGES) is IMAGES
    points = np.zeros((4, 2), "float32")
    assert make_augment("none", keras.random.SeedGenerator(0))(points) is points
    with pytest.raises(UserError, match="use train.augment=none for points"):
        make_augment("color", keras.random.SeedGenerator(0))(points)
    with pytest.raises(UserError, match="unknown: colour"):
        make_augment("colour,cutout", keras.random.SeedGenerator(0))
    with pytest.raises(UserError, match="one or more of: color, translation, cutout"):
        make_augment([], keras.random.SeedGenerator(0))


def test_augment_settings_are_checked_at_compose(compose_cfg):
    with pytest.raises(UserError, match="train.augment=yes is not one of: none, diffaug"):
        compose_cfg(["train.augment=yes"])
    with pytest.raises(UserError, match="has no effect with train.augment=none"):
        compose_cfg(["train.augment_policy=[cutout]"])
    cfg = compose_cfg(["train.augment=diffaug", "train.augment_policy=[translation,cutout]"])
    assert make_augment(cfg.train.augment_policy, keras.random.SeedGenerator(0))(IMAGES).shape == IMAGES.shape


def test_diffaug_run_differs_from_a_plain_one(compose_cfg, data_overrides, tmp_path):
    import json

    from ganctl.training.loop import train

    losses = {}
    for augment in ("none", "diffaug"):
        cfg = compose_cfg(["dataset=mnist", "train.steps=1", f"train.augment={augment}",
                           "train.ema=0", *data_overrides["mnist"]])
        (tmp_path / augment).mkdir()
        train(cfg, tmp_path / augment)
        row = json.loads((tmp_path / augment / "metrics.jsonl").read_text().splitlines()[0])
        losses[augment] = row["d_loss"]
    assert np.isfinite(losses["diffaug"]) and losses["diffaug"] != losses["none"]


def test_a_lazy_r1_run_reports_r1_as_last_measured(compose_cfg, tmp_path):
    """loss.r1_every=4: the logged gp changes only on the steps that compute R1 (the 1st, 5th,
    9th: the step counter is 0, 4, 8 in them) and holds R1's value, never 0, in between."""
    import json

    from ganctl.training.loop import train

    cfg = compose_cfg(["dataset=ring", "loss.r1_weight=1.0", "loss.r1_every=4", "train.steps=12",
                       "train.log_every=1", "train.progress=false", "train.health=false"])
    train(cfg, tmp_path)
    gp = [json.loads(line)["gp"] for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert len(gp) == 12 and all(value > 0 for value in gp)
    changed = [i + 1 for i in range(1, 12) if gp[i] != gp[i - 1]]
    assert changed == [5, 9]
