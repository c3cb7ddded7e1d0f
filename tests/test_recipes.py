"""Recipes (conf/recipe/<dataset>_<model>.yaml): picked by the dataset and model choices, shown
by --cfg job, recorded in the run's config, beaten by the command line and by an experiment."""
from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from tests.helpers import CONF, config_choices, ganctl

DATASETS, MODELS, EXPERIMENTS = (config_choices(g) for g in ("dataset", "model", "experiment"))
PAIRS = {f"{d}_{m}": (d, m) for d in DATASETS for m in MODELS}
RECIPES = config_choices("recipe")


def _set_values(path) -> dict:
    """Every dotted key a recipe or experiment file sets, with its value (defaults list aside)."""
    node = OmegaConf.load(path)
    node.pop("defaults", None)
    flat = {}

    def walk(value, prefix):
        if OmegaConf.is_dict(value):
            for key, child in value.items_ex(resolve=False):
                walk(child, f"{prefix}{key}.")
        else:
            flat[prefix[:-1]] = value
    walk(node, "")
    return flat


def test_every_recipe_is_named_after_a_dataset_and_model_pair():
    assert RECIPES, "no recipes shipped"
    orphans = [r for r in RECIPES if r not in PAIRS]
    assert not orphans, f"{orphans} match no <dataset>_<model> pair, so they never apply"


@pytest.mark.parametrize("recipe", RECIPES)
def test_every_recipe_composes_applies_and_is_recorded(recipe, compose_cfg, data_overrides):
    from ganctl.core.components import check_components

    dataset, model = PAIRS[recipe]
    cfg = compose_cfg([f"dataset={dataset}", f"model={model}", *data_overrides[dataset]])
    check_components(cfg)
    assert cfg.recipe == recipe
    for key, value in _set_values(CONF / "recipe" / f"{recipe}.yaml").items():
        if key in ("train.batch_size", "train.log_every", "train.sample_grid"):  # TINY's
            continue
        if isinstance(value, str) and value.startswith("${"):  # e.g. a batch-scaled rate
            context = OmegaConf.create({"train": OmegaConf.to_container(cfg.train),
                                        "loss": OmegaConf.to_container(cfg.loss), "_v": value})
            assert OmegaConf.select(cfg, key) == context._v, key
        else:
            assert OmegaConf.select(cfg, key) == value, key


@pytest.mark.parametrize("recipe", RECIPES)
def test_the_command_line_beats_a_recipe(recipe, compose_cfg, data_overrides):
    dataset, model = PAIRS[recipe]
    cfg = compose_cfg([f"dataset={dataset}", f"model={model}", "train.steps=7",
                       "train.g_lr=0.000123", *data_overrides[dataset]])
    assert cfg.recipe == recipe and cfg.train.steps == 7 and cfg.train.g_lr == 0.000123


def test_a_batch_scaled_rate_follows_the_batch_unless_given(compose_cfg, data_overrides):
    """A recipe's ${ganctl_batch_lr:lr,64,${train.batch_size}}: sqrt scaling from batch 64."""
    scaled = [r for r in RECIPES if "ganctl_batch_lr" in (CONF / "recipe" / f"{r}.yaml").read_text()]
    for recipe in scaled:
        dataset, model = PAIRS[recipe]
        at = {b: compose_cfg([f"dataset={dataset}", f"model={model}", f"train.batch_size={b}",
                              *data_overrides[dataset]]) for b in (64, 256)}
        assert at[256].train.g_lr == pytest.approx(2 * at[64].train.g_lr)
        given = compose_cfg([f"dataset={dataset}", f"model={model}", "train.batch_size=256",
                             "train.g_lr=0.001", *data_overrides[dataset]])
        assert given.train.g_lr == 0.001


@pytest.mark.parametrize("recipe", [r for r in RECIPES if "ganctl_without_penalty" in
                                    (CONF / "recipe" / f"{r}.yaml").read_text()])
@pytest.mark.parametrize("loss, batch_norm", [("ns", True), ("hinge", True), ("wgan_gp", False),
                                              ("ns loss.r1_weight=0.1", False)])
def test_a_recipes_d_batch_norm_gives_way_to_a_gradient_penalty(recipe, loss, batch_norm,
                                                                compose_cfg, data_overrides):
    """Batch norm makes D's verdict depend on the batch, which a per-example penalty forbids:
    the recipe turns it on only where the loss has none, so every loss still starts."""
    from ganctl.config import check_train_run

    dataset, model = PAIRS[recipe]
    cfg = compose_cfg([f"dataset={dataset}", f"model={model}", *f"loss={loss}".split(),
                       *data_overrides[dataset]])
    assert cfg.model.discriminator.batch_norm is batch_norm
    check_train_run(cfg)
    if batch_norm:  # and the command line still wins
        off = compose_cfg([f"dataset={dataset}", f"model={model}", f"loss={loss}",
                           "model.discriminator.batch_norm=false", *data_overrides[dataset]])
        assert off.model.discriminator.batch_norm is False


@pytest.mark.parametrize("recipe", [r for r in RECIPES if "ganctl_simultaneous_if_one_d_step"
                                    in (CONF / "recipe" / f"{r}.yaml").read_text()])
@pytest.mark.parametrize("loss, rule", [("ns", "simultaneous"), ("hinge", "simultaneous"),
                                        ("wgan_gp", "alternating")])
def test_a_recipes_simultaneous_update_gives_way_to_several_d_steps(recipe, loss, rule,
                                                                  compose_cfg, data_overrides):
    """The simultaneous update takes one D step per G step: under WGAN-GP's 5 critic steps the
    recipe falls back to alternating updates, so every loss still starts."""
    from ganctl.config import check_train_run

    dataset, model = PAIRS[recipe]
    cfg = compose_cfg([f"dataset={dataset}", f"model={model}", f"loss={loss}",
                       *data_overrides[dataset]])
    assert cfg.train.update_rule == rule
    check_train_run(cfg)
    given = compose_cfg([f"dataset={dataset}", f"model={model}", f"loss={loss}",
                         "train.update_rule=alternating", *data_overrides[dataset]])
    assert given.train.update_rule == "alternating"  # the command line still wins


@pytest.mark.parametrize("recipe", [r for r in RECIPES
                                    if "loss.r1_weight" in _set_values(CONF / "recipe" / f"{r}.yaml")])
def test_a_recipes_r1_turns_off_with_its_weight_alone(recipe, compose_cfg, data_overrides):
    """loss.r1_weight=0 is the whole override that turns a recipe's R1 off (its lazy interval
    follows), and loss.r1_every=8 still wins while R1 is on."""
    from ganctl.config import check_train_run

    dataset, model = PAIRS[recipe]
    base = [f"dataset={dataset}", f"model={model}", *data_overrides[dataset]]
    on = compose_cfg(base)
    assert on.loss.r1_weight > 0 and on.loss.r1_every > 1
    off = compose_cfg([*base, "loss.r1_weight=0"])
    assert off.loss.r1_weight == 0 and off.loss.r1_every == 1
    check_train_run(off)
    assert compose_cfg([*base, "loss.r1_every=8"]).loss.r1_every == 8


def test_a_pair_without_a_recipe_composes_without_one(compose_cfg, data_overrides):
    unmatched = next(name for name in PAIRS if name not in RECIPES)
    dataset, model = PAIRS[unmatched]
    cfg = compose_cfg([f"dataset={dataset}", f"model={model}", *data_overrides[dataset]])
    assert cfg.recipe is None


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_an_experiment_beats_the_recipe_of_its_pair(experiment, compose_cfg):
    cfg = compose_cfg([f"experiment={experiment}"])
    for key, value in _set_values(CONF / "experiment" / f"{experiment}.yaml").items():
        if key not in ("train.batch_size", "train.sample_grid"):  # TINY's
            assert OmegaConf.select(cfg, key) == value, key


@pytest.mark.parametrize("dataset", ["ring", "grid"])
def test_a_2d_dataset_alone_picks_the_mlp_and_its_recipe(dataset, compose_cfg):
    cfg = compose_cfg([f"dataset={dataset}"])
    assert cfg.model.generator._target_ == "ganctl.models.mlp.build_generator"
    assert cfg.recipe == f"{dataset}_mlp"
    explicit = compose_cfg([f"dataset={dataset}", "model=dcgan"])  # the command line still wins
    assert explicit.model.generator._target_ == "ganctl.models.dcgan.build_generator"


def test_cfg_job_shows_the_recipe(tmp_path):
    result = ganctl("train", "dataset=ring", "--cfg", "job", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "recipe: ring_mlp" in result.stdout


def test_a_run_saved_before_recipes_and_new_switches_still_resumes(compose_cfg, data_overrides,
                                                                  tmp_path):
    """An old config.yaml lacks recipe, train.ema_kimg/ema_rampup and the discriminator's
    pack/minibatch_std: resuming fills them with defaults that reproduce the old behaviour."""
    from ganctl.commands.train import run as train_command
    from ganctl.training.loop import train

    run = tmp_path / "run"
    run.mkdir()
    train(compose_cfg(["dataset=ring", "train.steps=2", *data_overrides["ring"]]), run)
    saved = OmegaConf.load(run / "config.yaml")
    for parent, key in [(saved, "recipe"), (saved.train, "ema_kimg"), (saved.train, "ema_rampup"),
                        (saved.train, "lr_decay_start"),
                        (saved.model.discriminator, "pack"),
                        (saved.model.discriminator, "minibatch_std")]:
        parent.pop(key)
    saved.train.steps = 4  # what `resume=... train.steps=4` does to it
    OmegaConf.save(saved, run / "config.yaml")
    train_command(compose_cfg([f"resume={run}"]), run)
    assert (run / "checkpoints" / "ckpt-4.index").is_file()
    again = OmegaConf.load(run / "config.yaml")
    assert again.train.ema_kimg is None and again.model.discriminator.pack == 1
