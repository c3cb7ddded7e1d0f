"""PacGAN packing and the minibatch-stddev layer (ganctl/models/mode_coverage.py): each switch
lets D tell a collapsed batch from a diverse one, and trains with every loss, penalty and
DiffAugment, conditional D included."""
from __future__ import annotations

import json

import numpy as np
import pytest

from ganctl import registry
from ganctl.config import NetworkConfig
from ganctl.errors import UserError
from tests.helpers import config_choices

# (model, dataset): every discriminator builder, on data it takes.
DISCRIMINATORS = [("mlp", "ring"), ("dcgan", "mnist"), ("cdcgan", "mnist"), ("sngan", "mnist"),
                  ("tutorial_dcgan", "mnist")]
LOSSES = config_choices("loss")
SWITCHES = {"pack": "model.discriminator.pack=2", "minibatch_std": "model.discriminator.minibatch_std=true"}


def _discriminator(compose_cfg, data_overrides, model, dataset, switch=None):
    from ganctl.core.components import build_dataset, build_discriminator, check_components

    cfg = compose_cfg([f"model={model}", f"dataset={dataset}", *data_overrides[dataset],
                       *([SWITCHES[switch]] if switch else [])])
    check_components(cfg)
    data = build_dataset(cfg.dataset)
    return build_discriminator(cfg.model, data), data


def _verdicts(discriminator, batch, labels):
    from ganctl.models.common import is_conditional

    inputs = [batch, labels] if is_conditional(discriminator) else batch
    return np.asarray(discriminator(inputs, training=False), np.float64).ravel()


@pytest.mark.parametrize("model,dataset", DISCRIMINATORS)
@pytest.mark.parametrize("switch", [None, *SWITCHES])
def test_switch_changes_the_verdict_on_a_collapsed_batch(model, dataset, switch, compose_cfg,
                                                        data_overrides):
    """The first pack/group is the same sample x0 (twice) in a collapsed batch, and x0 next to
    other samples in a diverse one. A per-example D gives x0 the same verdict in both; with a
    switch D's verdict on it depends on what it is judged with."""
    import keras

    keras.utils.set_random_seed(0)
    discriminator, data = _discriminator(compose_cfg, data_overrides, model, dataset, switch)
    images, _ = data.arrays("train", limit=8)
    diverse = images.astype("float32")
    collapsed = np.repeat(diverse[:1], len(diverse), axis=0)
    labels = np.zeros(len(diverse), np.int32)  # the same class, so only the images differ
    first_diverse = _verdicts(discriminator, diverse, labels)[0]
    first_collapsed = _verdicts(discriminator, collapsed, labels)[0]
    if switch is None:
        assert first_collapsed == pytest.approx(first_diverse, rel=1e-5, abs=1e-6)
    else:
        assert abs(first_collapsed - first_diverse) > 1e-4, (first_collapsed, first_diverse)


@pytest.mark.parametrize("loss", LOSSES)
def test_both_switches_train_with_every_loss_and_diffaug(loss, compose_cfg, data_overrides,
                                                         tmp_path):
    """A few real steps with pack=2 and minibatch std, DiffAugment on, each loss with its own
    penalty (wgan_gp's gradient penalty per pack) plus R1, and finite losses throughout. The
    first loss trains cdcgan instead of the mlp: each pack's conditional D sees the sum of its
    labels' embeddings (one training fewer than a separate conditional test)."""
    from ganctl.training.loop import train

    model = "cdcgan" if loss == LOSSES[0] else "mlp"
    cfg = compose_cfg([f"model={model}", "dataset=mnist", f"loss={loss}", "train.steps=2",
                       "loss.d_steps_per_g_step=1", "train.augment=diffaug",
                       *(["loss.r1_weight=1.0"] if loss != "wgan_gp" else ["loss.gp_weight=10"]),
                       SWITCHES["pack"], SWITCHES["minibatch_std"], *data_overrides["mnist"]])
    train(cfg, tmp_path)
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert all(np.isfinite(r[k]) for r in rows for k in ("d_loss", "g_loss", "gp"))
    if loss == "wgan_gp":
        assert rows[-1]["gp"] > 0
    assert (tmp_path / "generator.keras").is_file()


def test_pack_and_the_wgan_gp_penalty_take_one_norm_per_pack():
    """D(pack) = w . concat(x1, x2): the gradient per pack is w, so the norm is |w| (not |w|/sqrt 2
    per example): the penalty is (|w| - 1)^2 exactly."""
    import keras

    from ganctl.losses.wgan_gp import WassersteinGP
    from ganctl.models.mode_coverage import packed_discriminator
    from tests.helpers import linear_critic

    keras.utils.set_random_seed(0)
    weights = np.arange(1, 33, dtype="float32") / 40.0  # (4, 4, 2): two packed 4x4x1 images
    critic = packed_discriminator(_linear_on((4, 4, 2), weights, linear_critic), (4, 4, 1), 2)
    real = np.random.default_rng(0).normal(size=(8, 4, 4, 1)).astype("float32")
    fake = np.random.default_rng(1).normal(size=(8, 4, 4, 1)).astype("float32")
    penalty = WassersteinGP(gp_weight=1.0).own_penalty(critic, real, fake,
                                                        keras.random.SeedGenerator(0))
    assert float(penalty) == pytest.approx((np.linalg.norm(weights) - 1.0) ** 2, rel=1e-4)


def _linear_on(shape, weights, _):
    import keras

    inputs = keras.Input(shape=shape)
    dense = keras.layers.Dense(1, use_bias=False)
    model = keras.Model(inputs, dense(keras.layers.Flatten()(inputs)))
    dense.kernel.assign(weights.reshape(-1, 1))
    return model


@pytest.mark.parametrize("pack,batch", [(3, 8), (0, 8)])
def test_a_pack_that_does_not_fit_is_one_clear_error(pack, batch, compose_cfg, data_overrides):
    from ganctl.core.components import check_components

    with pytest.raises(UserError) as err:  # pack=0 breaks its field's rule at compose already
        check_components(compose_cfg(["model=mlp", "dataset=ring",
                                      f"model.discriminator.pack={pack}",
                                      f"train.batch_size={batch}", *data_overrides["ring"]]))
    text = str(err.value)
    assert f"model.discriminator.pack={pack}" in text and "\n" not in text
    assert (f"train.batch_size={batch}" in text) if pack else ">= 1" in text


def test_resize_upsampling_builds_the_same_shapes_without_transposed_convs():
    """model.generator.upsampling=resize: nearest 2x + 3x3 conv at every doubling (dcgan, cdcgan)."""
    import keras

    from ganctl.models import cdcgan, dcgan

    for shape in [(28, 28, 1), (32, 32, 3)]:
        g = dcgan.build_generator(z_dim=8, image_shape=shape, width=8, upsampling="resize")
        assert g.output_shape[1:] == shape
        assert not any(isinstance(x, keras.layers.Conv2DTranspose) for x in g.layers)
    c = cdcgan.build_generator(z_dim=8, image_shape=(28, 28, 1), num_classes=10, width=8,
                               upsampling="resize")
    assert c.output_shape[1:] == (28, 28, 1)
    with pytest.raises(UserError, match="upsampling=bilinear is not one of: transposed, resize"):
        registry.build({"_target_": "ganctl.models.dcgan.build_generator",
                        "upsampling": "bilinear"}, "model.generator", NetworkConfig, z_dim=8,
                       image_shape=(28, 28, 1), num_classes=0, bounded=True)
