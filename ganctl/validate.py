"""Fail in the first second: compose every job of the command line and check values and ranges.

Runs before Hydra creates a run directory, so bad input leaves nothing behind. No TensorFlow.
"""
from __future__ import annotations

import dataclasses
import difflib
from pathlib import Path

from omegaconf import DictConfig

from ganctl import config as schemas
from ganctl.errors import UserError, did_you_mean
from ganctl.rundir import SAMPLES_DIR, check_can_write, parse_checkpoint

# Flags Hydra takes with a value; everything else starting with '-' stands alone.
_FLAGS_WITH_VALUE = {"--cfg", "-c", "--package", "-p", "--config-dir", "-cd", "--info", "-i"}
_SKIP_PRECHECK = {"--help", "-h", "--hydra-help", "--config-path", "-cp", "--config-name", "-cn",
                  "--experimental-rerun", "--shell-completion", "-sc", "--cfg", "-c", "--info",
                  "-i", "--resolve", "--version"}

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
        _check_group_choices(job, config_dirs)
        if command == "sample":
            _check_sample_overrides(job)
        cfg = _compose(command, job)
        if command == "train":
            check_train_config(cfg)
            if optuna:
                check_optuna_objective(cfg)
            from ganctl.core.components import check_components  # imports the targets

            check_components(cfg)
        else:
            CHECKS[command](cfg)


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
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    try:
        return schemas.compose(command, overrides)
    except (HydraException, OmegaConfBaseException) as err:
        raise UserError(_misspelled(err, command) or _paragraph(err)) from err


def _misspelled(err: BaseException, command: str) -> str | None:
    """A misspelled key or group option, named with the closest accepted one. Hydra's own advice,
    `+key=value`, would only add a key nothing reads, so it is never given."""
    import re

    from omegaconf.errors import ConfigAttributeError, ConfigKeyError, ValidationError

    text = str(err)
    found = re.search(r"Could not find '([\w/]+)/([^']*)'", text)
    if found:
        group, name = found.groups()
        # Hydra lists every option it can see: ganctl's, Hydra's own and those of --config-dir.
        options = text.partition("Available options")[2].partition(":")[2]
        options = options.split("Config search path:")[0].split()
        return (f"{group}={name}: ganctl has no {group} called '{name}'."
                f"{did_you_mean(name, options, group + '=')} Accepted: {', '.join(options)}.")
    cause = err.__cause__
    if isinstance(cause, ValidationError) and getattr(cause, "full_key", None):
        # A value of the wrong type: say which type the key takes, with an example.
        parent, _, key = str(cause.full_key).rpartition(".")
        schema = _schema_of(cause) or schemas.schema_at(command, parent)
        spec = next((f for f in dataclasses.fields(schema) if f.name == key), None) if (
            schema) else None
        kind = str(spec.type) if spec else ""
        accepted = next((words for name, words in (
            ("bool", "true or false"), ("List[int]", "a list of whole numbers, e.g. [3,7]"),
            ("List[str]", "a list in brackets, e.g. [a,b]"), ("int", "a whole number"),
            ("float", "a number, e.g. 0.0002 or 2e-4")) if name in kind), None)
        if accepted:
            value = str(cause.__dict__.get("value", "")) or text.split("'")[1]
            accepted_values = schemas.accepted_values(spec)
            return (f"{cause.full_key}={value}: {cause.full_key} takes {accepted}"
                    + (f", {accepted_values}" if accepted_values else "") + ".")
    if not isinstance(cause, (ConfigKeyError, ConfigAttributeError)) or not getattr(cause, "full_key", None):
        return None
    full_key = str(cause.full_key)
    parent, _, key = full_key.rpartition(".")
    schema = _schema_of(cause) or schemas.schema_at(command, parent)
    if schema is None:
        return None
    fields = [f.name for f in dataclasses.fields(schema) if not f.name.startswith("_")]
    groups = _config_groups() if not parent and command == "train" else []
    prefix = parent + "." if parent else ""
    return (f"{full_key} is not a ganctl setting."
            f"{did_you_mean(key, fields + groups, prefix)} Settings here: "
            f"{', '.join(prefix + f for f in fields)}"
            + (f"; config groups: {', '.join(groups)}" if groups else "") + ".")


def _schema_of(cause) -> type | None:
    """The schema of the node an OmegaConf error happened in (a dataset option's own schema,
    which the command's schema cannot name: each dataset brings its own)."""
    node_type = getattr(cause, "object_type", None)
    return node_type if dataclasses.is_dataclass(node_type) else None


def _check_group_choices(overrides: list[str], config_dirs: list[str]) -> None:
    """A group option that does not exist. Hydra ignores it silently for an optional group
    (experiment=rign would train the defaults), so every group is checked here."""
    for override in overrides:
        key, _, name = override.partition("=")
        key = key.lstrip("+")
        if key not in _config_groups() or not name or name == "null":
            continue
        options = set(schemas.shipped_options(key))
        for directory in config_dirs:
            options |= {p.stem for p in (Path(directory) / key).glob("*.yaml")}
        if name not in options:
            raise UserError(f"{key}={name}: ganctl has no {key} called '{name}'."
                            f"{did_you_mean(name, options, key + '=')} Accepted: "
                            f"{', '.join(sorted(options))}.")


def _config_groups() -> list[str]:
    from importlib.resources import files

    return sorted(p.name for p in files("ganctl.conf").iterdir()
                  if p.is_dir() and p.name not in ("hydra", "__pycache__"))


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
    from ganctl.metrics.registry import check_metric_names

    _check_required(cfg)
    _check_known_keys(cfg, schemas.TrainRunConfig, "")
    schemas.check_train_run(cfg)
    # Checked even when train.eval_every=0: a typo found only at the first evaluation would cost
    # the steps before it.
    check_metric_names(cfg.train.eval_metrics, "train.eval_metrics")


def check_optuna_objective(cfg: DictConfig) -> None:
    """An Optuna study optimises the run's best in-training evaluation, so there must be one."""
    every, steps = cfg.train.eval_every, cfg.train.steps
    if not every or every > steps:
        raise UserError(f"hydra/sweeper=optuna_eval scores each trial by its best in-training "
                        f"evaluation (train.eval_metrics={list(cfg.train.eval_metrics)}), but "
                        f"train.eval_every={every} with train.steps={steps} evaluates never. Set "
                        f"train.eval_every to a number of steps <= train.steps, e.g. "
                        f"train.eval_every={max(1, steps // 5)}.")


def check_sample_config(cfg: DictConfig) -> None:
    _check_required(cfg)
    _check_known_keys(cfg, schemas.SampleConfig, "")
    parse_checkpoint(cfg.checkpoint)
    schemas.check_sample(cfg)
    if cfg.out:
        check_can_write(cfg.out, "out", "the samples")
        _check_not_replacing(Path(cfg.out).expanduser(), cfg)
    elif Path(cfg.run).expanduser().is_dir():
        check_can_write(Path(cfg.run).expanduser() / SAMPLES_DIR, "run",
                        "the samples (into <run>/samples/; out= writes elsewhere)")
    if cfg.labels is not None:
        labels = list(cfg.labels)
        classes = run_classes(cfg.run)
        if classes is not None and classes[0] > 0:
            bad = [label for label in labels if not 0 <= label < classes[0]]
            if bad:
                raise UserError(f"labels={labels}: {bad[0]} is not a class of this run's "
                                f"dataset. {_accepted_labels(*classes)}")


def check_eval_config(cfg: DictConfig) -> None:
    """Everything `ganctl eval` can know before loading a model: which inputs, values, metric
    names and the checkpoint named."""
    from ganctl.metrics.registry import check_metric_names

    _check_required(cfg)
    _check_known_keys(cfg, schemas.EvalConfig, "")
    parse_checkpoint(cfg.checkpoint)
    schemas.check_eval(cfg)
    for key, sub in (("run", "eval"), ("sweep", "")):
        if cfg[key] and Path(cfg[key]).expanduser().is_dir():
            check_can_write(Path(cfg[key]).expanduser() / sub, key, "the results")
    if list(cfg.metrics) != ["auto"]:
        check_metric_names(cfg.metrics, "metrics")


def _check_not_replacing(out: Path, cfg: DictConfig) -> None:
    """out= that names something already there is replaced only when asked (overwrite=true).
    format=dataset never writes over anything (sample.py says why)."""
    if cfg.overwrite or cfg.format == "dataset" or not out.exists():
        return
    if out.is_dir() and not any(out.iterdir()):
        return
    if out.is_dir() and not (cfg.format == "png" and not cfg.interpolate):
        return  # a folder given where one file goes: sample names the problem
    what = "a folder that is not empty" if out.is_dir() else "a file that exists"
    new = out.with_name(out.stem + "_2" + out.suffix)
    raise UserError(f"out={out} is {what}; ganctl sample never replaces your files unless "
                    f"asked. Give a new name, e.g. out={new}, or add overwrite=true to replace it.")


def check_report_config(cfg: DictConfig) -> None:
    _check_required(cfg)
    _check_known_keys(cfg, schemas.ReportConfig, "")
    schemas.check_report(cfg)


def check_doctor_config(cfg: DictConfig) -> None:
    _check_required(cfg)
    _check_known_keys(cfg, schemas.DoctorConfig, "")
    schemas.check_doctor(cfg)


def check_export_config(cfg: DictConfig) -> None:
    _check_required(cfg)
    _check_known_keys(cfg, schemas.ExportConfig, "")
    parse_checkpoint(cfg.checkpoint)
    schemas.check_export(cfg)


CHECKS = {"sample": check_sample_config, "eval": check_eval_config,
          "report": check_report_config, "export": check_export_config,
          "doctor": check_doctor_config}


def run_classes(run: str) -> tuple[int, tuple[str, ...], str] | None:
    """(num_classes, class_names, dataset name) of a run's dataset, read without TensorFlow, or
    None when the run folder cannot tell (sample then reports what is wrong with it)."""
    from ganctl.registry import build
    from ganctl import rundir

    try:
        run_cfg = rundir.load_run_config(rundir.check_run_dir(run))
        dataset = build(run_cfg.dataset, "dataset", schemas.dataset_schema(run_cfg.dataset))
        name = schemas.choice_name(run_cfg.dataset["_target_"])
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
        if isinstance(child, DictConfig) and "schema" in fields[key].metadata:
            child_schema = fields[key].metadata["schema"](child)  # the option's own (datasets)
        if isinstance(child, DictConfig):
            _check_known_keys(child, child_schema, f"{prefix}{key}.")
