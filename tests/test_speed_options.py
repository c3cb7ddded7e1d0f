"""Speed options (precision, update_rule, steps_per_call), the tutorial preset, and launcher presets.

Speed itself is measured by `make bench` (ganctl/bench.py), never asserted here.
"""
from __future__ import annotations

import importlib.util
import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from omegaconf import OmegaConf

from ganctl import registry
from ganctl.config import ModelConfig, NetworkConfig
from ganctl.errors import UserError
from tests.helpers import CONF, ganctl, shipped_node

DATA = ["dataset=mnist", "dataset.limit=256"]


def tutorial_networks(image_shape=(28, 28, 1), **overrides):
    """G and D from conf/model/tutorial_dcgan.yaml, built as `ganctl train` builds them."""
    node = shipped_node(ModelConfig, CONF / "model" / "tutorial_dcgan.yaml", overrides)
    generator = registry.build(node.generator, "model.generator", NetworkConfig, z_dim=node.z_dim,
                               image_shape=image_shape, num_classes=0, bounded=True)
    discriminator = registry.build(node.discriminator, "model.discriminator", NetworkConfig,
                                   image_shape=image_shape, num_classes=0)
    return generator, discriminator


def test_tutorial_dcgan_is_the_tutorials_layer_stack():
    generator, discriminator = tutorial_networks()
    # The parameter counts the TensorFlow DCGAN tutorial's model.summary() prints.
    assert generator.count_params() == 2_330_944
    assert discriminator.count_params() == 212_865

    def stack(model):
        rows = []
        for layer in model.layers[1:]:
            config = layer.get_config()
            rows.append((type(layer).__name__, config.get("units") or config.get("filters"),
                         config.get("kernel_size"), config.get("strides"), config.get("use_bias"),
                         config.get("negative_slope"), config.get("rate"),
                         config.get("target_shape") or config.get("activation")))
        return rows

    assert stack(generator) == [
        ("Dense", 7 * 7 * 256, None, None, False, None, None, "linear"),
        ("BatchNormalization", None, None, None, None, None, None, None),
        ("LeakyReLU", None, None, None, None, 0.3, None, None),
        ("Reshape", None, None, None, None, None, None, (7, 7, 256)),
        ("Conv2DTranspose", 128, (5, 5), (1, 1), False, None, None, "linear"),
        ("BatchNormalization", None, None, None, None, None, None, None),
        ("LeakyReLU", None, None, None, None, 0.3, None, None),
        ("Conv2DTranspose", 64, (5, 5), (2, 2), False, None, None, "linear"),
        ("BatchNormalization", None, None, None, None, None, None, None),
        ("LeakyReLU", None, None, None, None, 0.3, None, None),
        ("Conv2DTranspose", 1, (5, 5), (2, 2), False, None, None, "linear"),
        ("Activation", None, None, None, None, None, None, "tanh"),
    ]
    assert stack(discriminator) == [
        ("Conv2D", 64, (5, 5), (2, 2), True, None, None, "linear"),
        ("LeakyReLU", None, None, None, None, 0.3, None, None),
        ("Dropout", None, None, None, None, None, 0.3, None),
        ("Conv2D", 128, (5, 5), (2, 2), True, None, None, "linear"),
        ("LeakyReLU", None, None, None, None, 0.3, None, None),
        ("Dropout", None, None, None, None, None, 0.3, None),
        ("Flatten", None, None, None, None, None, None, None),
        ("Dense", 1, None, None, True, None, None, "linear"),
    ]
    assert all(layer.get_config().get("padding", "same") == "same" for layer in generator.layers)


def test_tutorial_dcgan_rejects_shapes_it_cannot_build():
    with pytest.raises(UserError, match="divisible by 4"):
        tutorial_networks((30, 30, 1))
    with pytest.raises(UserError, match="model=mlp"):
        tutorial_networks((2,))
    generator, _ = tutorial_networks((32, 32, 3))  # the same stack on a 8x8 base grid
    assert generator.output_shape == (None, 32, 32, 3)


def test_tutorial_preset_is_the_tutorials_setup(compose_cfg):
    cfg = compose_cfg(["experiment=tutorial_dcgan"])
    assert cfg.model.generator._target_ == "ganctl.models.tutorial.build_generator"
    assert cfg.loss._target_ == "ganctl.losses.ns.NonSaturating"
    assert cfg.model.z_dim == 100 and cfg.train.update_rule == "simultaneous" and cfg.train.ema == 0
    assert cfg.train.precision == "float32"  # bf16 costs FID (README "Speed"), so it is opt-in
    assert cfg.train.batch_size == 8  # the test's tiny override wins over the preset's 256
    assert (cfg.train.g_lr, cfg.train.d_lr) == (1e-4, 1e-4)
    assert (cfg.train.g_beta1, cfg.train.g_beta2, cfg.train.d_beta1) == (0.9, 0.999, 0.9)


@pytest.mark.parametrize("precision,steps_per_call", [
    ("float32", 1), ("mixed_bfloat16", 1), ("mixed_float16", 1), ("auto", 2)])
def test_precision_and_steps_per_call_train_checkpoint_and_resume(precision, steps_per_call,
                                                                   compose_cfg, tmp_path):
    from ganctl.core.generators import load_generator
    from ganctl.training.loop import train
    from ganctl.core.generators import generate

    overrides = ["model=tutorial_dcgan", *DATA, f"train.precision={precision}",
                 f"train.steps_per_call={steps_per_call}", "train.update_rule=simultaneous",
                 f"train.log_every={steps_per_call}", f"train.checkpoint_every={steps_per_call}"]
    first, total = 2 * steps_per_call, 4 * steps_per_call
    train(compose_cfg([*overrides, f"train.steps={first}"]), tmp_path)
    assert keras.mixed_precision.dtype_policy().name == "float32"  # not left set for others
    train(compose_cfg([*overrides, f"train.steps={total}", f"resume={tmp_path}"]), tmp_path,
          resuming=True)

    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(steps_per_call, total + 1, steps_per_call))
    assert all(np.isfinite(r[k]) for r in rows for k in ("d_loss", "g_loss", "d_real", "d_fake"))
    assert rows[-1]["images_seen"] == total * 8
    # Variables stay float32 under every policy, so `ganctl sample` restores into a float32 G.
    generator, _, step = load_generator(tmp_path)
    assert step == total
    images = generate(generator, np.zeros((3, 100), np.float32))
    assert images.dtype == np.float32 and np.isfinite(images).all()


def test_simultaneous_update_is_the_tutorials_train_step():
    """One ganctl step with update_rule=simultaneous equals the tutorial's train_step on the same
    weights, noise, dropout masks and batch."""
    from ganctl.config import TrainConfig
    from ganctl.core.state import TrainingState
    from ganctl.losses.ns import NonSaturating
    from ganctl.training.steps import make_train_step

    keras.utils.set_random_seed(1)
    generator, discriminator = tutorial_networks(generator={"width": 16},
                                                 discriminator={"width": 16})
    real_images = tf.random.uniform((16, 28, 28, 1), -1.0, 1.0, seed=2)
    seed_generator = keras.random.SeedGenerator(3)
    rngs = [seed_generator.state] + [layer.seed_generator.state for layer in discriminator.layers
                                     if isinstance(layer, keras.layers.Dropout)]
    start = ([v.numpy() for v in rngs], generator.get_weights(), discriminator.get_weights())

    def reset():
        for variable, value in zip(rngs, start[0]):
            variable.assign(value)
        generator.set_weights(start[1])
        discriminator.set_weights(start[2])

    options = OmegaConf.merge(OmegaConf.structured(TrainConfig),
                              {"ema": 0.0, "update_rule": "simultaneous", "seed": 0,
                               # D(real) then D(fake), as the tutorial draws its dropout masks
                               "joint_d_call": False})
    state = TrainingState(
        networks={"generator": generator, "discriminator": discriminator}, averages={},
        optimizers={"generator": keras.optimizers.Adam(1e-4),
                    "discriminator": keras.optimizers.Adam(1e-4)},
        learning_rates={"generator": 1e-4, "discriminator": 1e-4},
        loss=NonSaturating(), step=tf.Variable(0, dtype=tf.int64),
        first_nonfinite_step=tf.Variable(-1, dtype=tf.int64), seed_generator=seed_generator,
        strategy=tf.distribute.get_strategy(), precision="float32", z_dim=100, d_steps=1,
        train=options)
    step = make_train_step(state)
    step(real_images, tf.zeros((len(real_images),), "int32"))  # unlabelled data: labels 0
    ganctl_weights = generator.get_weights() + discriminator.get_weights()

    # The tutorial's train_step, verbatim but for the noise, which must be ganctl's draw.
    reset()
    noise = keras.random.normal((16, 100), seed=seed_generator)
    cross_entropy = keras.losses.BinaryCrossentropy(from_logits=True)
    generator_optimizer, discriminator_optimizer = (keras.optimizers.Adam(1e-4),
                                                    keras.optimizers.Adam(1e-4))

    @tf.function
    def train_step(images):
        with tf.GradientTape() as gen_tape, tf.GradientTape() as disc_tape:
            generated_images = generator(noise, training=True)
            real_output = discriminator(images, training=True)
            fake_output = discriminator(generated_images, training=True)
            gen_loss = cross_entropy(tf.ones_like(fake_output), fake_output)
            disc_loss = (cross_entropy(tf.ones_like(real_output), real_output)
                         + cross_entropy(tf.zeros_like(fake_output), fake_output))
        gradients_of_generator = gen_tape.gradient(gen_loss, generator.trainable_variables)
        gradients_of_discriminator = disc_tape.gradient(disc_loss,
                                                        discriminator.trainable_variables)
        generator_optimizer.apply_gradients(zip(gradients_of_generator,
                                                generator.trainable_variables))
        discriminator_optimizer.apply_gradients(zip(gradients_of_discriminator,
                                                    discriminator.trainable_variables))

    train_step(real_images)
    tutorial_weights = generator.get_weights() + discriminator.get_weights()
    moved = [np.abs(a - b).max() for a, b in zip(tutorial_weights, start[1] + start[2])]
    assert min(moved) > 0  # every variable changed, so the comparison below means something
    for ours, theirs in zip(ganctl_weights, tutorial_weights):
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-7)


def test_auto_precision_picks_bf16_only_on_a_cpu_that_has_it(monkeypatch):
    from ganctl.core import state

    monkeypatch.setattr(state, "cpu_has_bf16", lambda: True)
    assert state.resolve_precision("auto", "CPU") == "mixed_bfloat16"
    assert state.resolve_precision("auto", "GPU") == "float32"
    monkeypatch.setattr(state, "cpu_has_bf16", lambda: False)
    assert state.resolve_precision("auto", "CPU") == "float32"
    assert state.resolve_precision("mixed_float16", "CPU") == "mixed_float16"


def test_speed_options_are_checked_before_a_run(compose_cfg):
    with pytest.raises(UserError, match=r"steps_per_call=3 .*train.steps=2000, train.log_every=1"):
        compose_cfg(["train.steps_per_call=3", "train.steps=2000"])
    with pytest.raises(UserError, match="d_steps_per_g_step=1"):
        compose_cfg(["loss=wgan_gp", "train.update_rule=simultaneous"])
    with pytest.raises(UserError, match="cannot take loss.g_steps_per_d_step=2; set "
                                        "loss.g_steps_per_d_step=1"):
        compose_cfg(["loss.g_steps_per_d_step=2", "train.update_rule=simultaneous"])
    with pytest.raises(UserError, match="cannot take train.g_batch_size=4; set "
                                        "train.g_batch_size=null"):
        compose_cfg(["train.g_batch_size=4", "train.update_rule=simultaneous"])
    with pytest.raises(UserError, match="train.precision=half is not one of"):
        compose_cfg(["train.precision=half"])


def plugin(name: str):
    """Skip unless the Hydra plugin is installed (the `sweep` extra)."""
    missing = importlib.util.find_spec(f"hydra_plugins.{name}") is None
    return pytest.mark.skipif(missing, reason=f"{name} is not installed: pip install '.[sweep]'")


@plugin("hydra_joblib_launcher")
def test_parallel_launcher_runs_a_two_job_sweep(tmp_path):
    sweep = tmp_path / "sweep"
    result = ganctl("train", "-m", "hydra/launcher=parallel", "hydra.launcher.n_jobs=2",
                    "model.generator.width=8", "model.discriminator.width=8", "train.steps=2",
                    "train.batch_size=8", "dataset.limit=64", "train.sample_grid=4",
                    "train.progress=false", "train.seed=1,2", f"hydra.sweep.dir={sweep}",
                    cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir() and (p / "checkpoints").is_dir())
    assert len(jobs) == 2 and all(list((j / "checkpoints").glob("ckpt-2.index")) for j in jobs)
    assert "Joblib" in result.stdout + result.stderr


@pytest.mark.parametrize("preset,expected", [
    pytest.param("hydra/launcher=slurm", "SlurmLauncher",
                 marks=plugin("hydra_submitit_launcher")),
    pytest.param("hydra/sweeper=optuna_eval", "direction: minimize",
                 marks=plugin("hydra_optuna_sweeper")),
])
def test_cluster_and_optuna_presets_compose(preset, expected, tmp_path):
    result = ganctl("train", preset, "--cfg", "hydra", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert expected in result.stdout and "deprecated" not in result.stderr


@plugin("hydra_optuna_sweeper")
def test_optuna_study_optimises_the_runs_best_evaluation(tmp_path):
    """Two trials on the ring: each returns its best in-training FID, and Optuna's best value is
    the lower of the two, read back from each trial's own checkpoints/best/best.json."""
    import yaml

    sweep = tmp_path / "study"
    result = ganctl("train", "-m", "hydra/sweeper=optuna_eval", "hydra.sweeper.n_trials=2",
                    "hydra.sweeper.n_jobs=1", "model=mlp", "dataset=ring", "dataset.size=512",
                    "model.generator.width=16", "model.discriminator.width=16",
                    "train.batch_size=32", "train.steps=20", "train.eval_every=10",
                    "train.eval_num=256", "train.log_every=10", "train.progress=false",
                    "train.sample_grid=4", f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    trials = sorted(p for p in sweep.iterdir() if (p / "checkpoints" / "best").is_dir())
    assert len(trials) == 2
    bests = [json.loads((t / "checkpoints" / "best" / "best.json").read_text()) for t in trials]
    assert {b["metric"] for b in bests} == {"fid"}
    study = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert study["best_value"] == pytest.approx(min(b["value"] for b in bests), rel=1e-9)


def test_optuna_needs_an_in_training_evaluation(tmp_path):
    result = ganctl("train", "-m", "hydra/sweeper=optuna_eval", "train.steps=100",
                    f"hydra.sweep.dir={tmp_path / 'study'}", cwd=tmp_path)
    assert result.returncode == 2
    assert "train.eval_every=0 with train.steps=100" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "study").exists()


def test_optuna_objective_refuses_a_study_pointed_the_wrong_way():
    from ganctl.commands.train import optuna_objective

    best = {"metric": "fid", "value": 12.5, "step": 10}
    assert optuna_objective({"best": best}, "minimize") == 12.5
    assert optuna_objective({"best": best}, "StudyDirection.MINIMIZE") == 12.5
    with pytest.raises(UserError, match="hydra.sweeper.direction=minimize"):
        optuna_objective({"best": best}, "maximize")
    with pytest.raises(UserError, match="train.eval_every"):
        optuna_objective({"best": None}, "minimize")


def test_sweep_folder_names_stay_short_and_distinct():
    from ganctl.config import MAX_DIR_NAME, short_dir_name

    assert short_dir_name("loss=ns,train.seed=1") == "loss=ns,train.seed=1"
    long_names = [f"train.g_lr={lr},train.d_lr=0.0002693883019285409," + "x" * 200 for lr in (1, 2)]
    short = [short_dir_name(name) for name in long_names]
    assert all(len(name.encode()) <= MAX_DIR_NAME for name in short) and short[0] != short[1]
