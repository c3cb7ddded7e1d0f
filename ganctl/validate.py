"""Fail in the first second: compose every job of the command line and check values and ranges.

Runs before Hydra creates a run directory, so bad input leaves nothing behind. No TensorFlow.
"""
from __future__ import annotations

import dataclasses
import difflib
from pathlib import Path

from omegaconf import DictConfig

from ganctl import config as schemas
from ganctl.errors import UserError
from ganctl.training.distribute import STRATEGIES  # TF-free at import

# Flags Hydra takes with a value; everything else starting with '-' stands alone.
_FLAGS_WITH_VALUE = {"--cfg", "-c", "--package", "-p", "--config-dir", "-cd", "--info", "-i"}
_SKIP_PRECHECK = {"--help", "-h", "--hydra-help", "--config-path", "-cp", "--config-name", "-cn",
                  "--experimental-rerun", "--shell-completion", "-sc", "--cfg", "-c", "--info",
                  "-i", "--resolve", "--version"}

_POSITIVE = ["train.steps", "train.batch_size", "train.log_every", "train.sample_every",
             "train.checkpoint_every", "train.keep_checkpoints", "train.sample_grid",
             "train.nan_retries", "train.steps_per_call", "loss.d_steps_per_g_step", "model.z_dim",
             "model.generator.width", "model.discriminator.width"]
_POSITIVE_FLOAT = ["train.g_lr", "train.d_lr", "train.ema_kimg", "train.ema_rampup"]
_UNIT_INTERVAL = ["train.g_beta1", "train.g_beta2", "train.d_beta1", "train.d_beta2", "train.ema",
                  "model.generator.dropout", "model.discriminator.dropout"]
_CHOICES = {"train.on_nan": ("stop", "rollback"), "dataset.on_bad_file": ("skip", "error"),
            "train.precision": ("auto", "float32", "mixed_bfloat16", "mixed_float16"),
            "train.update_rule": ("alternating", "simultaneous"),
            "train.augment": ("none", "diffaug"),
            "train.strategy": STRATEGIES}
# Steps at which the loop acts; with train.steps_per_call=K it only sees every K-th step.
_STEP_MULTIPLES = ["train.steps", "train.log_every", "train.sample_every",
                   "train.checkpoint_every", "train.eval_every"]


def precheck(command: str, args: list[str]) -> None:
    """Compose each job the command line asks for and check it, raising UserError."""
    if any(a.split("=", 1)[0] in _SKIP_PRECHECK for a in args):
        return
    overrides, config_dirs, multirun = [], [], False
    it = iter(args)
    for arg in it:
        if arg in ("-m", "--multirun"):
            multirun = True
        elif arg in ("--config-dir", "-cd"):
            config_dirs.append(next(it, ""))
        elif arg.startswith("--config-dir="):
            config_dirs.append(arg.split("=", 1)[1])
        elif arg in _FLAGS_WITH_VALUE:
            next(it, None)
        elif not arg.startswith("-"):
            overrides.append(arg)
    for directory in config_dirs:
        if not Path(directory).is_dir():
            raise UserError(f"--config-dir {directory} is not a directory. Give a directory laid "
                            "out like ganctl's conf/ (e.g. DIR/dataset/mine.yaml).")
    if config_dirs:
        paths = ",".join(f"file://{Path(d).resolve()}" for d in config_dirs)
        overrides = [*overrides, f"hydra.searchpath=[{paths}]"]
    optuna = multirun and any(o.replace(" ", "").startswith("hydra/sweeper=optuna")
                              for o in overrides)
    for job in _expand(overrides, multirun):
        if command == "sample":
            _check_sample_overrides(job)
        cfg = _compose(command, job)
        if command == "train":
            check_train_config(cfg)
            if optuna:
                check_optuna_objective(cfg)
            from ganctl.training.components import check_components  # imports the targets

            check_components(cfg)
        elif command == "sample":
            check_sample_config(cfg)


def _expand(overrides: list[str], multirun: bool) -> list[list[str]]:
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except HydraException as err:
        raise UserError(_paragraph(err)) from err
    if not multirun:
        for o in parsed:
            if o.is_sweep_override():
                raise UserError(f"'{o.input_line}' lists several values; add -m to sweep over "
                                f"them (ganctl <command> -m {o.input_line}), or give one value.")
        return [overrides]
    return [job for batch in BasicSweeper.split_arguments(parsed, None) for job in batch]


def _compose(command: str, overrides: list[str]) -> DictConfig:
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    GlobalHydra.instance().clear()
    try:
        with initialize_config_module("ganctl.conf", version_base="1.3"):
            return compose(command, overrides=overrides)
    except (HydraException, OmegaConfBaseException) as err:
        raise UserError(_paragraph(err)) from err
    finally:
        GlobalHydra.instance().clear()


def _paragraph(err: BaseException) -> str:
    """Hydra's multi-line message (and its cause) as one paragraph without search-path noise."""
    parts = []
    for e in (err, err.__cause__):
        if e is None:
            continue
        text = str(e).split("Config search path:")[0]
        lines = [ln.strip() for ln in text.splitlines()
                 if ln.strip() and not ln.strip().startswith(("reference_type", "object_type"))]
        if "Available options" in text:
            head, _, options = text.partition("Available options")
            label, _, names = options.partition(":")
            lines = [head.strip().rstrip(".") + ".",
                     f"Available options{label}: {', '.join(names.split())}."]
        parts.append(" ".join(lines))
    return " ".join(dict.fromkeys(parts)).replace("In 'train': ", "")


def check_train_config(cfg: DictConfig) -> None:
    _check_required(cfg)
    _check_known_keys(cfg, schemas.TrainRunConfig, "")
    for key in _POSITIVE + _POSITIVE_FLOAT:
        value = _get(cfg, key)
        if value is not None and value <= 0:
            accepted = "> 0" if key in _POSITIVE_FLOAT else "1 or more"
            raise UserError(f"{key}={value} must be positive ({accepted}).")
    for key in _UNIT_INTERVAL:
        value = _get(cfg, key)
        if value is not None and not 0 <= value < 1:
            raise UserError(f"{key}={value} must be in [0, 1).")
    for key, choices in _CHOICES.items():
        value = _get(cfg, key)
        if value is not None and value not in choices:
            raise UserError(f"{key}={value} is not one of: {', '.join(choices)}.")
    if cfg.train.augment == "none" and list(cfg.train.augment_policy) != _default("augment_policy"):
        raise UserError(f"train.augment_policy={list(cfg.train.augment_policy)} has no effect with "
                        "train.augment=none; add train.augment=diffaug.")
    for key in ("loss.gp_weight", "loss.r1_weight"):
        if _get(cfg, key) < 0:
            raise UserError(f"{key}={_get(cfg, key)} must be 0 or more.")
    penalties = [f"{k}={_get(cfg, k)}" for k in ("loss.gp_weight", "loss.r1_weight") if _get(cfg, k) > 0]
    if penalties and cfg.model.discriminator.batch_norm:
        # The penalty is per example; batch norm makes D's output depend on the whole batch.
        raise UserError("model.discriminator.batch_norm=true cannot be combined with a gradient "
                        f"penalty ({', '.join(penalties)}); set model.discriminator.batch_norm=false "
                        "or drop the penalty.")
    _check_speed_options(cfg)
    from ganctl.training.ema import check_ema  # no TF at module level

    if problem := check_ema(cfg.train):
        raise UserError(problem)


def check_optuna_objective(cfg: DictConfig) -> None:
    """An Optuna study optimises the run's best in-training evaluation, so there must be one."""
    every, steps = cfg.train.eval_every, cfg.train.steps
    if not every or every > steps:
        raise UserError(f"hydra/sweeper=optuna_eval scores each trial by its best in-training "
                        f"evaluation (train.eval_metrics={list(cfg.train.eval_metrics)}), but "
                        f"train.eval_every={every} with train.steps={steps} evaluates never. Set "
                        f"train.eval_every to a number of steps <= train.steps, e.g. "
                        f"train.eval_every={max(1, steps // 5)}.")


def _default(name: str):
    """A TrainConfig field's default value."""
    spec = next(f for f in dataclasses.fields(schemas.TrainConfig) if f.name == name)
    return spec.default_factory() if spec.default is dataclasses.MISSING else spec.default


def _check_speed_options(cfg: DictConfig) -> None:
    if cfg.train.update_rule == "simultaneous" and cfg.loss.d_steps_per_g_step != 1:
        raise UserError("train.update_rule=simultaneous updates D and G from one forward pass, "
                        f"so it needs loss.d_steps_per_g_step=1 (got {cfg.loss.d_steps_per_g_step}); "
                        "use train.update_rule=alternating with this loss.")
    per_call = cfg.train.steps_per_call
    if per_call > 1:
        # 0 disables eval_every, and 0 is a multiple of anything.
        off = [f"{k}={_get(cfg, k)}" for k in _STEP_MULTIPLES
               if _get(cfg, k) is not None and _get(cfg, k) % per_call]
        if off:
            raise UserError(f"train.steps_per_call={per_call} runs {per_call} steps per call, so "
                            "the loop can only log, sample, evaluate, checkpoint and stop at "
                            f"multiples of {per_call}, but {', '.join(off)} is not one. Make them "
                            f"multiples of {per_call} or lower train.steps_per_call.")


def check_sample_config(cfg: DictConfig) -> None:
    from ganctl.training.rundir import parse_checkpoint

    _check_required(cfg)
    _check_known_keys(cfg, schemas.SampleConfig, "")
    parse_checkpoint(cfg.checkpoint)
    if cfg.num <= 0:
        raise UserError(f"num={cfg.num} must be 1 or more (the number of samples to write).")
    formats = ("grid", "png", "npz", "gif", "dataset")
    if cfg.format not in formats:
        raise UserError(f"format={cfg.format} is not one of: {', '.join(formats)}.")
    if cfg.interpolate and cfg.format == "dataset":
        raise UserError("interpolate=true writes an animated GIF, so it cannot be combined with "
                        "format=dataset; drop one of them.")
    if cfg.per_class is not None and cfg.per_class <= 0:
        raise UserError(f"per_class={cfg.per_class} must be 1 or more (samples of each class).")
    if cfg.labels is not None:
        labels = list(cfg.labels)
        if not labels:
            raise UserError("labels=[] names no class. Give class numbers such as labels=[3,7], "
                            "or leave labels out to draw every class.")
        classes = run_classes(cfg.run)
        if classes is not None and classes[0] > 0:
            bad = [label for label in labels if not 0 <= label < classes[0]]
            if bad:
                raise UserError(f"labels={labels}: {bad[0]} is not a class of this run's "
                                f"dataset. {_accepted_labels(*classes)}")


def run_classes(run: str) -> tuple[int, tuple[str, ...], str] | None:
    """(num_classes, class_names, dataset name) of a run's dataset, read without TensorFlow, or
    None when the run folder cannot tell (sample then reports what is wrong with it)."""
    from ganctl.registry import build
    from ganctl.training import rundir

    try:
        run_cfg = rundir.load_run_config(rundir.check_run_dir(run))
        dataset = build(run_cfg.dataset, "dataset", schemas.DatasetConfig)
        name = str(run_cfg.dataset["_target_"]).split(".")[2]
        return int(dataset.num_classes), tuple(dataset.class_names), name
    except UserError:
        return None


def _accepted_labels(num_classes: int, names: tuple[str, ...], dataset: str) -> str:
    """The sentence naming the accepted label range, with the class names when they say more."""
    if num_classes == 0:
        return (f"The run's dataset ({dataset}) has no classes, so its model draws none; "
                "labels= needs a class-conditional run (model=cdcgan on labelled data).")
    numbered = names == tuple(str(i) for i in range(num_classes))
    listed = "" if numbered or num_classes > 20 else " (" + ", ".join(
        f"{i}={n}" for i, n in enumerate(names)) + ")"
    return (f"Labels are whole numbers from 0 to {num_classes - 1} ({dataset} has {num_classes} "
            f"classes{listed}), in brackets: e.g. labels=[{min(3, num_classes - 1)}] or "
            f"labels=[0,{num_classes - 1}].")


def _check_sample_overrides(overrides: list[str]) -> None:
    """labels= and per_class= in a form Hydra would reject with a message about types: say what
    is accepted instead (class numbers in brackets, a whole number)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = [o for o in OverridesParser.create().parse_overrides(overrides)
              if not o.is_delete() and not o.is_sweep_override()]
    run = next((str(o.value()) for o in parsed if o.key_or_group == "run"), None)
    for o in parsed:
        value = o.value()
        if o.key_or_group == "labels" and value is not None and not (
                isinstance(value, list) and all(_is_int(v) for v in value)):
            classes = run_classes(run) if run else None
            accepted = (_accepted_labels(*classes) if classes else "Labels are whole numbers "
                        "from 0 to K-1, K being the number of classes of the run's dataset (10 "
                        "for mnist), in brackets: e.g. labels=[3] or labels=[3,7].")
            raise UserError(f"labels={o.get_value_element_as_str()} is not a list of class "
                            f"numbers. {accepted}")
        if o.key_or_group == "per_class" and value is not None and not _is_int(value):
            raise UserError(f"per_class={o.get_value_element_as_str()} must be a whole number "
                            "(samples of each class), e.g. per_class=8.")


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_required(cfg: DictConfig) -> None:
    from omegaconf import OmegaConf

    missing = sorted(k for k in OmegaConf.missing_keys(cfg) if not k.startswith("hydra"))
    if missing:
        examples = {"dataset.path": "dataset.path=~/my_images", "run": "run=outputs/<date>/<time>"}
        hint = "; e.g. " + ", ".join(examples[k] for k in missing if k in examples) if any(
            k in examples for k in missing) else ""
        raise UserError(f"{', '.join(missing)} must be given on the command line{hint}.")


def _get(cfg: DictConfig, dotted: str):
    node = cfg
    for part in dotted.split("."):
        if not isinstance(node, DictConfig) or part not in node:
            return None
        node = node[part]
    return node


def _check_known_keys(node, schema, prefix: str) -> None:
    """Catch `+train.bach_size=3`-style additions, which Hydra accepts silently."""
    if not dataclasses.is_dataclass(schema) or not isinstance(node, DictConfig):
        return
    fields = {f.name: f for f in dataclasses.fields(schema)}
    for key in node.keys():
        if key == "hydra":
            continue
        if key not in fields:
            close = difflib.get_close_matches(key, fields, n=1)
            hint = f" Did you mean {prefix}{close[0]}?" if close else ""
            raise UserError(f"{prefix}{key} is not a ganctl setting.{hint} Settings here: "
                            f"{', '.join(prefix + f for f in fields if not f.startswith('_'))}.")
        field_type = fields[key].type
        child_schema = getattr(schemas, field_type, None) if isinstance(field_type, str) else field_type
        child = node._get_node(key)
        if isinstance(child, DictConfig):
            _check_known_keys(child, child_schema, f"{prefix}{key}.")
