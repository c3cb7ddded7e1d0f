"""Models: every conf/model/*.yaml builds G and D for the shapes it supports, and trains a step."""
from __future__ import annotations

import inspect
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from ganctl import registry
from ganctl.config import ModelConfig, NetworkConfig
from ganctl.errors import UserError
from ganctl.models.common import is_conditional
from ganctl.models.dcgan import upsampling_plan
from tests.helpers import CONF, build_loss, shipped_node

# Noise -> image models; the image-to-image ones (translation:) are tested in test_translation.py.
MODEL_FILES = sorted(p for p in (CONF / "model").glob("*.yaml") if "translation:" not in p.read_text())
POINTS = (2,)
IMAGE_SHAPES = [(28, 28, 1), (32, 32, 3), (64, 64, 3), (100, 100, 3)]
Z_DIM = 16
BATCH = 4
NUM_CLASSES = 3  # every model gets a labelled dataset's context; unconditional ones ignore it
LABELS = np.arange(BATCH, dtype=np.int32) % NUM_CLASSES


def inputs(network, x):
    """A network's inputs: x, plus the labels for a class-conditional one (cdcgan)."""
    return [x, keras.ops.convert_to_tensor(LABELS)] if is_conditional(network) else x


def build_networks(path: Path, image_shape, width: int = 8, **overrides):
    """(generator, discriminator) as `ganctl train` builds them: YAML merged into the schema."""
    node = shipped_node(ModelConfig, path, overrides)
    context = {"image_shape": tuple(image_shape), "num_classes": NUM_CLASSES}
    for network in (node.generator, node.discriminator):
        if "width" in inspect.signature(registry.resolve_target(network._target_, "model")).parameters:
            network.width = width  # tiny, where the architecture has a width at all
    generator = registry.build(node.generator, "model.generator", schema=NetworkConfig,
                               z_dim=Z_DIM, bounded=len(image_shape) == 3, **context)
    discriminator = registry.build(node.discriminator, "model.discriminator",
                                   schema=NetworkConfig, **context)
    return generator, discriminator


CASES = [(path, shape) for path in MODEL_FILES for shape in [POINTS, *IMAGE_SHAPES]]


@pytest.mark.parametrize("path,image_shape", CASES,
                         ids=[f"{p.stem}-{'x'.join(map(str, s))}" for p, s in CASES])
def test_output_shapes_and_ranges(path, image_shape):
    """Each model builds a shape or refuses it with a UserError that names the shape."""
    try:
        generator, discriminator = build_networks(path, image_shape)
    except UserError as err:
        assert any(str(d) in str(err) for d in image_shape) or "image data" in str(err), err
        return
    assert generator.name == "generator" and discriminator.name == "discriminator"
    z = keras.random.normal((BATCH, Z_DIM), seed=0)
    fake_images = generator(inputs(generator, z), training=False)
    assert tuple(fake_images.shape) == (BATCH, *image_shape)
    assert fake_images.dtype == "float32"
    bounded = len(image_shape) == 3
    assert generator.get_layer("output").activation.__name__ == ("tanh" if bounded else "linear")
    if bounded:
        values = fake_images.numpy()
        assert values.min() >= -1.0 and values.max() <= 1.0
    logits = discriminator(inputs(discriminator, fake_images), training=False)
    assert tuple(logits.shape) == (BATCH, 1) and logits.dtype == "float32"
    assert np.all(np.isfinite(logits.numpy()))


@pytest.mark.parametrize("path", MODEL_FILES, ids=lambda p: p.stem)
def test_every_model_supports_mnist_or_the_2d_points(path):
    assert first_supported_shape(path) is not None


def first_supported_shape(path: Path):
    for shape in (POINTS, (28, 28, 1)):
        try:
            build_networks(path, shape)
            return shape
        except UserError:
            pass
    return None


def test_dcgan_refuses_points_and_points_to_mlp():
    with pytest.raises(UserError, match="model=mlp"):
        build_networks(CONF / "model" / "dcgan.yaml", POINTS)


@pytest.mark.parametrize("resolution,plan", [
    (28, (7, 7, 2)), (32, (4, 4, 3)), (64, (4, 4, 4)), (100, (25, 25, 2)),
    (128, (4, 4, 5)), (256, (4, 4, 6)),
])
def test_dcgan_depth_follows_resolution(resolution, plan):
    assert upsampling_plan((resolution, resolution, 3)) == plan


def test_dcgan_channels_double_towards_the_base_capped_at_8x():
    generator, discriminator = build_networks(CONF / "model" / "dcgan.yaml", (256, 256, 3), width=2)
    # From the base outwards: the reshape, then each transposed conv; the last one has `width`.
    up_channels = [generator.get_layer("reshape").output.shape[-1]] + [
        generator.get_layer(f"up{i}").output.shape[-1] for i in range(1, 6)]
    assert up_channels == [16, 16, 16, 8, 4, 2]
    down_channels = [discriminator.get_layer(f"down{i}").output.shape[-1] for i in range(1, 7)]
    assert down_channels == [2, 4, 8, 16, 16, 16]


@pytest.mark.parametrize("resolution", [27, 74])
def test_dcgan_bad_resolution_is_a_user_error(resolution):
    # 27 cannot be halved at all; 74 halves once to a 37x37 base, above the 32 limit.
    with pytest.raises(UserError, match=rf"{resolution}x{resolution}.*28, 32, 64"):
        build_networks(CONF / "model" / "dcgan.yaml", (resolution, resolution, 3))


@pytest.mark.parametrize("path,override", [
    ("dcgan", {"generator": {"depth": 5}}),
    ("mlp", {"discriminator": {"batch_norm": True}}),
])
def test_unused_setting_is_a_user_error(path, override):
    with pytest.raises(UserError, match="has no effect"):
        build_networks(CONF / "model" / f"{path}.yaml", (28, 28, 1), **override)


@pytest.mark.parametrize("override,match", [
    ({"generator": {"width": 0}}, "width=0"),
    ({"discriminator": {"dropout": 1.5}}, "dropout=1.5"),
])
def test_bad_sizes_are_user_errors(override, match):
    node = shipped_node(ModelConfig, CONF / "model" / "dcgan.yaml", override)
    with pytest.raises(UserError, match=match):
        for name in ("generator", "discriminator"):
            registry.build(node[name], f"model.{name}", schema=NetworkConfig, z_dim=Z_DIM,
                           image_shape=(28, 28, 1), num_classes=0, bounded=True)


@pytest.mark.parametrize("path", MODEL_FILES, ids=lambda p: p.stem)
def test_one_training_step_changes_both_networks(path):
    # Seeded, and least squares: a randomly initialised D can output logits of +-40 (sngan sums
    # over positions), where the BCE losses' gradients underflow to 1e-18 and Adam's first step
    # cannot move a weight. LSGAN's gradients grow with the logits instead.
    keras.utils.set_random_seed(0)
    image_shape = first_supported_shape(path)
    generator, discriminator = build_networks(path, image_shape)
    loss = build_loss(CONF / "loss" / "lsgan.yaml")
    real_images = keras.random.uniform((BATCH, *image_shape), -1.0, 1.0, seed=1)
    z = keras.random.normal((BATCH, Z_DIM), seed=2)

    d_before = [w.numpy().copy() for w in discriminator.trainable_weights]
    with tf.GradientTape() as tape:
        fake_images = generator(inputs(generator, z), training=True)
        d_loss = loss.discriminator_loss(discriminator(inputs(discriminator, real_images), training=True),
                                         discriminator(inputs(discriminator, fake_images), training=True))
    grads = tape.gradient(d_loss, discriminator.trainable_weights)
    keras.optimizers.Adam(1e-3).apply(grads, discriminator.trainable_weights)
    assert all(np.any(before != after.numpy())
               for before, after in zip(d_before, discriminator.trainable_weights))

    g_before = [w.numpy().copy() for w in generator.trainable_weights]
    with tf.GradientTape() as tape:
        fake_images = generator(inputs(generator, z), training=True)
        g_loss = loss.generator_loss(discriminator(inputs(discriminator, fake_images), training=True))
    grads = tape.gradient(g_loss, generator.trainable_weights)
    keras.optimizers.Adam(1e-3).apply(grads, generator.trainable_weights)
    # Every weight moves: none is cancelled by a following batch norm (such a bias would only
    # ever get rounding noise as gradient; the builders leave those biases out).
    assert all(np.any(before != after.numpy())
               for before, after in zip(g_before, generator.trainable_weights))


@pytest.mark.parametrize("shape", [(28, 28, 1), (32, 32, 3)])
def test_extra_convs_add_3x3_convs_at_each_inner_resolution(shape):
    """model.generator.extra_convs=2: two 3x3 stride-1 convs after every doubling but the last,
    at that doubling's size and channels; the images keep their shape and 0 is the plain G."""
    plain, _ = build_networks(CONF / "model" / "dcgan.yaml", shape)
    deeper, _ = build_networks(CONF / "model" / "dcgan.yaml", shape,
                               generator={"extra_convs": 2})
    doublings = upsampling_plan(shape)[2]
    added = [layer for layer in deeper.layers if layer.name not in {x.name for x in plain.layers}]
    extra = [layer for layer in added if isinstance(layer, keras.layers.Conv2D)]
    assert len(extra) == 2 * (doublings - 1)
    for layer in extra:
        up = deeper.get_layer(layer.name.split("_")[0])
        assert layer.kernel_size == (3, 3) and layer.output.shape == up.output.shape
    assert deeper.output_shape == plain.output_shape == (None, *shape)
    conditional, _ = build_networks(CONF / "model" / "cdcgan.yaml", shape,
                                    generator={"extra_convs": 1})
    assert sum(isinstance(x, keras.layers.Conv2D) and "_conv" in x.name
               for x in conditional.layers) == doublings - 1
    with pytest.raises(UserError, match="extra_convs=-1"):
        build_networks(CONF / "model" / "dcgan.yaml", shape, generator={"extra_convs": -1})


def _unfused_up(x, channels, upsampling, *, use_bias, name):
    """The resize doubling as it was built before ResizeConv2D: UpSampling2D, then a 3x3 conv."""
    x = keras.layers.UpSampling2D(2, interpolation="nearest", name=f"{name}_resize")(x)
    return keras.layers.Conv2D(channels, 3, padding="same", use_bias=use_bias, name=name)(x)


@pytest.mark.parametrize("shape,use_bias", [((2, 7, 7, 5), True), ((3, 5, 9, 2), False)])
def test_resize_conv_is_a_nearest_resize_then_the_3x3_conv(shape, use_bias):
    """The fused transposed conv gives the outputs and gradients of resize + conv, odd and
    non-square sizes and the borders included."""
    from ganctl.models.common import ResizeConv2D

    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(size=shape), tf.float32)
    fused = ResizeConv2D(4, use_bias=use_bias)
    unfused = keras.layers.Conv2D(4, 3, padding="same", use_bias=use_bias)
    fused.build(shape), unfused.build(shape)
    unfused.set_weights([rng.normal(size=w.shape) for w in unfused.get_weights()])
    fused.set_weights(unfused.get_weights())
    target = tf.constant(rng.normal(size=(shape[0], 2 * shape[1], 2 * shape[2], 4)), tf.float32)

    def outputs_and_gradients(forward, layer):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = forward(x)
            loss = tf.reduce_sum(y * target)
        return [y, *tape.gradient(loss, [x, *layer.trainable_weights])]

    got = outputs_and_gradients(fused, fused)
    want = outputs_and_gradients(lambda v: unfused(keras.layers.UpSampling2D(2)(v)), unfused)
    assert got[0].shape == want[0].shape == fused.compute_output_shape(shape)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-4)


def test_resize_generator_restores_checkpoints_of_the_unfused_one(monkeypatch, tmp_path):
    """Runs saved before ResizeConv2D (UpSampling2D + Conv2D) restore whole into today's resize G
    and make the same images; checkpoints record layers by position."""
    from ganctl.models import dcgan

    rng = np.random.default_rng(1)
    build = dict(z_dim=Z_DIM, image_shape=(28, 28, 3), width=8, upsampling="resize")
    with monkeypatch.context() as patch:
        patch.setattr(dcgan, "_up", _unfused_up)
        old = dcgan.build_generator(**build)
    assert any(isinstance(layer, keras.layers.UpSampling2D) for layer in old.layers)
    for weight in old.weights:  # moving variances stay positive
        weight.assign(np.abs(rng.normal(size=weight.shape)) * 0.1 + 0.5 * ("variance" in weight.path))
    saved = tf.train.Checkpoint(generator=old).write(str(tmp_path / "ckpt"))
    new = dcgan.build_generator(**build)
    assert not any(isinstance(layer, keras.layers.UpSampling2D) for layer in new.layers)
    tf.train.Checkpoint(generator=new).read(saved).assert_consumed()
    z = rng.normal(size=(BATCH, Z_DIM)).astype(np.float32)
    np.testing.assert_allclose(new(z, training=False), old(z, training=False), atol=1e-5)
