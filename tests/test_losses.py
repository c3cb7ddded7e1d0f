"""Losses: generic properties for every conf/loss/*.yaml, values from independent numpy formulas."""
from __future__ import annotations


import keras
import numpy as np
import pytest
import tensorflow as tf

from ganctl.errors import UserError
from ganctl.losses.wgan_gp import WassersteinGP, random_interpolation
from tests.helpers import CONF, build_loss, linear_critic

LOSS_DIR = CONF / "loss"
LOSS_FILES = sorted(LOSS_DIR.glob("*.yaml"))


def softplus(x):
    return np.log1p(np.exp(x))


# Each loss written again from its paper, in numpy: (discriminator_loss, generator_loss).
REFERENCE = {
    "minimax": (lambda r, f: np.mean(softplus(-r)) + np.mean(softplus(f)),
                lambda r, f: np.mean(np.log(1.0 - 1.0 / (1.0 + np.exp(-f))))),
    "ns": (lambda r, f: np.mean(-np.log(1.0 / (1.0 + np.exp(-r))))
           + np.mean(-np.log(1.0 - 1.0 / (1.0 + np.exp(-f)))),
           lambda r, f: np.mean(-np.log(1.0 / (1.0 + np.exp(-f))))),
    "lsgan": (lambda r, f: 0.5 * np.mean((r - 1.0) ** 2) + 0.5 * np.mean(f ** 2),
              lambda r, f: 0.5 * np.mean((f - 1.0) ** 2)),
    "hinge": (lambda r, f: np.mean(np.maximum(0.0, 1.0 - r)) + np.mean(np.maximum(0.0, 1.0 + f)),
              lambda r, f: -np.mean(f)),
    "wgan_gp": (lambda r, f: np.mean(f) - np.mean(r), lambda r, f: -np.mean(f)),
    # Relativistic pairing: -log sigmoid(D(x_i) - D(G(z_i))), the i-th real against the i-th fake.
    "rpgan": (lambda r, f: np.mean(-np.log(1.0 / (1.0 + np.exp(-(r - f))))),
              lambda r, f: np.mean(-np.log(1.0 / (1.0 + np.exp(-(f - r)))))),
}


def tiny_critic(input_shape=(4, 4, 1)) -> keras.Model:
    inputs = keras.Input(shape=input_shape)
    x = keras.layers.Flatten()(inputs)
    x = keras.layers.Dense(8, activation="tanh")(x)
    return keras.Model(inputs, keras.layers.Dense(1)(x))


def test_every_loss_file_has_a_reference():
    assert {p.stem for p in LOSS_FILES} == set(REFERENCE)


@pytest.mark.parametrize("path", LOSS_FILES, ids=lambda p: p.stem)
def test_losses_are_finite_float32_scalars_with_gradients(path):
    loss = build_loss(path)
    rng = np.random.default_rng(0)
    real_logits = tf.Variable(rng.normal(size=(16, 1)).astype("float32"))
    fake_logits = tf.Variable(rng.normal(size=(16, 1)).astype("float32"))
    with tf.GradientTape(persistent=True) as tape:
        d_loss = loss.discriminator_loss(real_logits, fake_logits)
        g_loss = loss.generator_loss(fake_logits, real_logits)
    for value in (d_loss, g_loss):
        assert value.shape == () and value.dtype == tf.float32
        assert np.isfinite(value.numpy())
    for grad in tape.gradient(d_loss, [real_logits, fake_logits]) + [tape.gradient(g_loss, fake_logits)]:
        assert grad is not None and np.all(np.isfinite(grad.numpy()))
        assert np.any(grad.numpy() != 0)
    assert loss.d_steps_per_g_step >= 1


@pytest.mark.parametrize("path", LOSS_FILES, ids=lambda p: p.stem)
def test_penalty_is_a_finite_scalar_that_trains_the_critic(path):
    loss = build_loss(path)
    critic = tiny_critic()
    rng = np.random.default_rng(1)
    real_images = rng.uniform(-1, 1, size=(8, 4, 4, 1)).astype("float32")
    fake_images = rng.uniform(-1, 1, size=(8, 4, 4, 1)).astype("float32")
    with tf.GradientTape() as tape:
        penalty = loss.penalty(critic, real_images, fake_images, keras.random.SeedGenerator(0))
        penalty = tf.convert_to_tensor(penalty, dtype=tf.float32)
    assert penalty.shape == () and np.isfinite(penalty.numpy()) and penalty.numpy() >= 0
    if loss.gp_weight > 0:
        # The penalty must reach D's weights (second-order gradient through the inner tape).
        # (The output bias cannot move grad_x D, so only the kernels are checked.)
        kernels = [w for w in critic.trainable_weights if "kernel" in w.path]
        grads = tape.gradient(penalty, kernels)
        assert all(g is not None and np.any(g.numpy() != 0) for g in grads)


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_values_match_numpy_reference(name):
    loss = build_loss(LOSS_DIR / f"{name}.yaml")
    reference_d, reference_g = REFERENCE[name]
    rng = np.random.default_rng(2)
    real_logits = (3.0 * rng.normal(size=(64, 1))).astype("float32")
    fake_logits = (3.0 * rng.normal(size=(64, 1))).astype("float32")
    r, f = real_logits.astype("float64"), fake_logits.astype("float64")
    np.testing.assert_allclose(loss.discriminator_loss(real_logits, fake_logits).numpy(),
                               reference_d(r, f), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(loss.generator_loss(fake_logits, real_logits).numpy(),
                               reference_g(r, f), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ["minimax", "ns"])
def test_bce_discriminator_loss_vanishes_when_d_is_perfect(name):
    loss = build_loss(LOSS_DIR / f"{name}.yaml")
    assert loss.uses_sigmoid
    d_loss = loss.discriminator_loss(np.full((8, 1), 40.0, "float32"), np.full((8, 1), -40.0, "float32"))
    assert 0.0 <= d_loss.numpy() < 1e-12
    np.testing.assert_allclose(loss.probability(np.zeros((2, 1), "float32")).numpy(), 0.5)


def test_minimax_generator_saturates_where_ns_does_not():
    """When D confidently rejects fakes, minimax's G gradient vanishes; ns's stays near 1/B."""
    fake_logits = tf.Variable(np.full((16, 1), -10.0, "float32"))
    gradient_norms = {}
    for name in ("minimax", "ns"):
        loss = build_loss(LOSS_DIR / f"{name}.yaml")
        with tf.GradientTape() as tape:
            g_loss = loss.generator_loss(fake_logits)
        gradient_norms[name] = float(tf.norm(tape.gradient(g_loss, fake_logits)))
    # d/dx -softplus(x) = -sigmoid(x) ~ 4.5e-5 at -10; d/dx softplus(-x) = -sigmoid(-x) ~ -1.
    assert gradient_norms["minimax"] < 1e-3 * gradient_norms["ns"]
    np.testing.assert_allclose(gradient_norms["ns"], 1.0 / np.sqrt(16), rtol=1e-3)


@pytest.mark.parametrize("scale", [1.0, 0.3, 3.0])
def test_gradient_penalty_of_a_linear_critic(scale):
    """grad_x (w . x) = w everywhere, so the penalty is gp_weight * (||w|| - 1)^2."""
    rng = np.random.default_rng(3)
    weights = rng.normal(size=16)
    weights *= scale / np.linalg.norm(weights)
    loss = WassersteinGP(gp_weight=10.0)
    real_images = rng.uniform(-1, 1, size=(32, 4, 4, 1)).astype("float32")
    fake_images = rng.uniform(-1, 1, size=(32, 4, 4, 1)).astype("float32")
    penalty = loss.penalty(linear_critic(weights), real_images, fake_images,
                           keras.random.SeedGenerator(0))
    np.testing.assert_allclose(penalty.numpy(), 10.0 * (scale - 1.0) ** 2, rtol=1e-4, atol=1e-4)


def test_interpolation_eps_is_uniform_per_example():
    batch = 4000
    real_images = np.ones((batch, 3, 3, 2), "float32")
    fake_images = np.zeros((batch, 3, 3, 2), "float32")
    # With real=1 and fake=0 every interpolated value is eps itself.
    points = random_interpolation(real_images, fake_images, keras.random.SeedGenerator(0)).numpy()
    eps = points[:, 0, 0, 0]
    assert np.all(points == eps[:, None, None, None]), "one eps per example, shared by its pixels"
    assert eps.min() >= 0.0 and eps.max() <= 1.0
    assert eps.min() < 0.01 and eps.max() > 0.99
    # Uniform(0, 1): mean 1/2, variance 1/12, flat histogram (a normal eps fails all three).
    assert abs(eps.mean() - 0.5) < 0.02 and abs(eps.var() - 1 / 12) < 0.01
    counts, _ = np.histogram(eps, bins=10, range=(0.0, 1.0))
    assert counts.min() > 0.8 * batch / 10 and counts.max() < 1.2 * batch / 10
    again = random_interpolation(real_images, fake_images, keras.random.SeedGenerator(0)).numpy()
    np.testing.assert_array_equal(points, again)


def test_gradient_penalty_runs_in_tf_function_with_unknown_batch():
    loss = WassersteinGP(gp_weight=10.0)
    critic = tiny_critic(input_shape=(2,))
    seed_generator = keras.random.SeedGenerator(0)
    spec = tf.TensorSpec((None, 2), tf.float32)

    @tf.function(input_signature=[spec, spec])
    def penalty(real_points, fake_points):
        return loss.penalty(critic, real_points, fake_points, seed_generator)

    rng = np.random.default_rng(4)
    first = penalty(rng.normal(size=(5, 2)).astype("float32"), rng.normal(size=(5, 2)).astype("float32"))
    second = penalty(rng.normal(size=(7, 2)).astype("float32"), rng.normal(size=(7, 2)).astype("float32"))
    assert np.isfinite(first.numpy()) and np.isfinite(second.numpy())


def test_zero_gp_weight_gives_zero_penalty():
    loss = WassersteinGP(gp_weight=0.0)
    images = np.zeros((2, 4, 4, 1), "float32")
    assert float(loss.penalty(tiny_critic(), images, images, keras.random.SeedGenerator(0))) == 0.0


@pytest.mark.parametrize("path", LOSS_FILES, ids=lambda p: p.stem)
def test_bad_d_steps_is_a_user_error(path):
    with pytest.raises(UserError, match="d_steps_per_g_step=0"):
        build_loss(path, d_steps_per_g_step=0)


def test_negative_gp_weight_is_a_user_error():
    with pytest.raises(UserError, match="gp_weight=-1"):
        build_loss(LOSS_DIR / "wgan_gp.yaml", gp_weight=-1.0)


def test_gp_weight_on_a_loss_without_penalty_is_a_user_error():
    with pytest.raises(UserError, match="gp_weight=10.0 has no effect"):
        build_loss(LOSS_DIR / "ns.yaml", gp_weight=10.0)


@pytest.mark.parametrize("path", LOSS_FILES, ids=lambda p: p.stem)
def test_generator_loss_reads_real_logits_exactly_when_the_loss_says_so(path):
    """The step runs D on real data in G's update only for generator_needs_real: a loss that
    read them without saying so would get None there."""
    loss = build_loss(path)
    rng = np.random.default_rng(4)
    fake_logits = rng.normal(size=(16, 1)).astype("float32")
    real_logits = rng.normal(size=(16, 1)).astype("float32")
    moved = [float(loss.generator_loss(fake_logits, real_logits + shift)) for shift in (0.0, 2.0)]
    assert (moved[0] != moved[1]) == loss.generator_needs_real
    if not loss.generator_needs_real:
        assert float(loss.generator_loss(fake_logits)) == moved[0]
