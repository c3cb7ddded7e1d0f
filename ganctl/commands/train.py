"""`ganctl train`: a new run in Hydra's run directory, or `resume=<run dir>` to continue one."""
from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import os
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf, open_dict

from ganctl.errors import UserError
from ganctl import rundir
from ganctl.validate import check_train_config

# With resume=, these may differ from the saved run: how long to go on, how to report it and how
# often to save. None of them changes what a step computes, so a resume stays exact.
# train.strategy only changes how the same step is spread over devices (tests/test_distribute.py).
RESUMABLE_OVERRIDES = ("resume", "train.steps", "train.progress", "train.log_every",
                       "train.sample_every", "train.checkpoint_every", "train.keep_checkpoints",
                       "train.strategy")


def run(cfg: DictConfig, run_dir: Path) -> dict:
    check_train_config(cfg)
    resuming = cfg.resume is not None
    if resuming:
        run_dir = rundir.check_run_dir(cfg.resume, what="resume")
        cfg = _config_for_resume(cfg, run_dir)
    else:  # the CLI refuses a named hydra.run.dir before Hydra writes; this covers the rest
        rundir.refuse_training_over(run_dir)
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    from ganctl.training.loop import train

    from ganctl.replicas import is_chief_process

    # Other workers of a multi-worker run share the chief's run folder but never write to it.
    with _only_writer(run_dir) if is_chief_process() else contextlib.nullcontext():
        with _report_when_done(run_dir, is_chief_process()):
            result = train(cfg, run_dir, resuming=resuming)
    sweeper = _optuna_sweeper()
    return result if sweeper is None else optuna_objective(result, sweeper.direction)


def _optuna_sweeper():
    """The Optuna sweeper's config when this job is an Optuna trial, else None."""
    if not HydraConfig.initialized():
        return None
    sweeper = HydraConfig.get().sweeper
    return sweeper if "optuna" in str(sweeper.get("_target_", "")).lower() else None


def optuna_objective(result: dict, direction) -> float:
    """The number an Optuna trial reports: the best in-training evaluation (checkpoints/best/
    best.json), checked against the study's direction so a search never optimises backwards."""
    from ganctl.evaluation import LOWER_IS_BETTER

    best = result.get("best")
    if best is None:
        raise UserError("this Optuna trial has no in-training evaluation to report; set "
                        "train.eval_every to a number of steps <= train.steps.")
    wanted = "minimize" if best["metric"] in LOWER_IS_BETTER else "maximize"
    if str(direction).split(".")[-1].lower() != wanted:
        raise UserError(f"the trials are scored by {best['metric']}, which should be {wanted}d, "
                        f"but the study's direction is {direction}; set "
                        f"hydra.sweeper.direction={wanted}.")
    return float(best["value"])


@contextlib.contextmanager
def _report_when_done(run_dir: Path, chief: bool):
    """report.html at the end of every run: finished, stopped by a signal, or diverged.

    Only once training has begun, which the loop marks by (re)writing config.yaml: a run that
    failed before (bad data, a checkpoint that does not fit) is left exactly as it was, and a
    new one's folder can still be removed."""
    config = run_dir / rundir.CONFIG_FILE
    before = config.stat().st_mtime_ns if config.is_file() else None
    status = "finished"
    try:
        yield
    except BaseException as err:
        status = str(err).split(". Continue with")[0] or type(err).__name__
        raise
    finally:
        if chief and config.is_file() and config.stat().st_mtime_ns != before:
            from ganctl.reporting import write_report_quietly

            write_report_quietly(run_dir, status)


@contextlib.contextmanager
def _only_writer(run_dir: Path):
    """Hold an exclusive lock on the run folder: two processes training one run would delete
    each other's unfinished saves. The kernel drops the lock when the process dies, even by kill."""
    fd = os.open(run_dir, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UserError(f"{run_dir} is being trained by another ganctl process right now; "
                            "wait for it to finish or stop it before resuming.") from None
        yield
    finally:
        os.close(fd)


def _config_for_resume(cfg: DictConfig, run_dir: Path) -> DictConfig:
    """The run's own saved config; only the settings in RESUMABLE_OVERRIDES may be changed."""
    overrides = list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []
    changed = [o for o in overrides if o.lstrip("+~").split("=", 1)[0] not in RESUMABLE_OVERRIDES]
    if changed:
        raise UserError(f"resume={run_dir} continues that run with its own config, so "
                        f"{', '.join(changed)} cannot be changed; only "
                        f"{', '.join(RESUMABLE_OVERRIDES[1:])} can. Start a new run to change them.")
    saved = _with_new_defaults(rundir.load_run_config(run_dir))
    steps = OmegaConf.select(cfg, "train.steps") if any(
        o.split("=", 1)[0] == "train.steps" for o in overrides) else saved.train.steps
    done = rundir.newest_saved_step(run_dir)
    if done >= steps:
        # Said before training starts: resuming would only restore and save again. A config
        # that names foreign code is reported first, as on any other resume.
        from ganctl.core.components import check_components

        check_components(saved)
        raise UserError(f"resume={run_dir} has already trained {done} steps, and train.steps="
                        f"{steps}: there is nothing left to train. To go on, raise the target, "
                        f"e.g. ganctl train resume={run_dir} train.steps={max(2 * done, done + 1)}.")
    with open_dict(saved):
        for key in RESUMABLE_OVERRIDES[1:]:
            if any(o.split("=", 1)[0] == key for o in overrides):
                OmegaConf.update(saved, key, OmegaConf.select(cfg, key))
        saved.resume = str(run_dir)
    return saved  # written back by the loop once the checkpoint has been restored


def _with_new_defaults(saved: DictConfig) -> DictConfig:
    """A run saved by an older ganctl lacks settings added since; they take their defaults,
    which reproduce the old behaviour (each new setting defaults to what ganctl did before).
    A config that does not fit the schema at all is returned as it is, for the component
    checks to name what is wrong with it (e.g. a planted _target_)."""
    from omegaconf.errors import OmegaConfBaseException

    from ganctl.config import DatasetConfig, TrainRunConfig, dataset_schema

    try:
        base = OmegaConf.structured(TrainRunConfig)
        schema = dataset_schema(saved.dataset)
        base.dataset = OmegaConf.structured(schema)
        # Runs saved before each dataset had its own schema list every dataset setting, all at
        # their old defaults (anything else was refused); keep the ones this option has.
        known = {f.name for f in dataclasses.fields(schema)}
        if schema is not DatasetConfig:  # an option it cannot name keeps every key
            with open_dict(saved):
                saved.dataset = {k: v for k, v in saved.dataset.items() if k in known}
        return OmegaConf.merge(base, saved)
    except OmegaConfBaseException:
        return saved
