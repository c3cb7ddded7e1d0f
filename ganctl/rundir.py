"""What a run directory holds, and reading it back safely. No TensorFlow here."""
from __future__ import annotations

import contextlib
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from ganctl.errors import UserError

CONFIG_FILE = "config.yaml"          # resolved config, with dataset.source filled in
CHECKPOINT_DIR = "checkpoints"
BEST_DIR = "best"                    # under CHECKPOINT_DIR: train.eval_every's best checkpoint
BEST_FILE = "best.json"              # in BEST_DIR: which metric, value and step it holds
SAMPLES_DIR = "samples"
METRICS_FILE = "metrics.jsonl"
HEALTH_FILE = "health.jsonl"         # train.health: each warning as it starts and clears
GENERATOR_EXPORT = "generator.keras"
REPORT_FILE = "report.html"          # `ganctl report`, also written at the end of every run
REALS_FILE = "reals.png"             # a batch of training data, as the first snapshot
TENSORBOARD_DIR = "tensorboard"
LOG_FILE = "train.log"               # Hydra's job log, named after the job
STATUS_FILE = "status.json"          # sweep jobs: ok / failed / interrupted, for the summary
EVAL_DIR = "eval"                    # `ganctl eval run=` results
EVAL_FILE = "metrics.json"
EXPORT_DIR = "export"                # `ganctl export`'s default folder
EXPORT_LOG = "exports.jsonl"         # under EXPORT_DIR: one line per export, wherever it went


def newest_saved_step(run_dir: Path) -> int:
    """The newest step with a complete checkpoint (its index is written last), 0 if none."""
    steps = [int(p.name[len("ckpt-"):-len(".index")]) for p in
             (Path(run_dir) / CHECKPOINT_DIR).glob("ckpt-*.index")
             if p.name[len("ckpt-"):-len(".index")].isdigit()]
    return max(steps, default=0)


def refuse_training_over(run_dir) -> None:
    """A new run never starts in a folder that holds another run's checkpoints: its saves would
    overwrite theirs and keep_checkpoints would delete the rest."""
    done = newest_saved_step(Path(run_dir))
    if done:
        raise UserError(f"{run_dir} already holds a ganctl run with checkpoints up to step {done}, "
                        "and a new run there would replace them. To continue that run: ganctl "
                        f"train resume={run_dir}. For a new run, give another folder "
                        "(hydra.run.dir=<new folder>, or leave it out for outputs/<date>/<time>).")


def parse_checkpoint(value) -> int | str | None:
    """checkpoint=: None (the newest), a step number, or "best"; a UserError otherwise."""
    if value is None or value == BEST_DIR:
        return value
    text = str(value).strip()
    if text.isdigit():
        return int(text)
    raise UserError(f"checkpoint={value} is not a checkpoint: give a step number (one of the "
                    f"ckpt-<step> files in <run>/{CHECKPOINT_DIR}/), checkpoint=best for the "
                    "best in-training evaluation (train.eval_every), or leave it out for the "
                    "newest.")


def check_run_dir(path: str, what: str = "run") -> Path:
    """The run directory `path`, or a UserError saying why it is not one."""
    run_dir = Path(path).expanduser()
    if not run_dir.is_dir():
        raise UserError(f"{what}={path} is not a directory. Give a run directory made by "
                        "`ganctl train` (e.g. outputs/<date>/<time>), which holds config.yaml "
                        "and checkpoints/.")
    if not (run_dir / CONFIG_FILE).is_file():
        raise UserError(f"{what}={path} is not a ganctl run: it has no {CONFIG_FILE}. Give a run "
                        "directory made by `ganctl train` (e.g. outputs/<date>/<time>).")
    return run_dir.resolve()


def check_can_write(path, key: str, makes: str = "a folder") -> None:
    """UserError unless `path` (a file or folder ganctl is about to make) can be created: its
    nearest existing parent is a folder this user can write into. Probed by making and removing
    a temporary folder there, which also catches read-only mounts and /proc-like file systems."""
    import tempfile

    target = Path(str(path)).expanduser()
    # An existing file there is the overwrite check's to judge; its folder must be writable.
    parent = next(p for p in [*([target] if target.is_dir() else []), *target.parents]
                  if p.exists())
    if not parent.is_dir():
        raise UserError(f"{key}={path} is inside '{parent}', which is a file, not a folder. Give "
                        "a path that is new or inside a folder.")
    try:
        probe = tempfile.mkdtemp(prefix=".ganctl-probe-", dir=parent)
    except OSError as err:
        raise UserError(f"{key}={path}: ganctl cannot write {makes} there, because '{parent}' "
                        f"refuses new files ({err.strerror}). Give a path in a folder you may "
                        f"write to, e.g. {key}={Path.home() / 'ganctl-outputs' / target.name}, or fix the "
                        "folder's permissions.") from None
    with contextlib.suppress(OSError):
        Path(probe).rmdir()


def load_run_config(run_dir: Path) -> DictConfig:
    """The run's saved config as plain data. It is never handed to hydra.utils.instantiate."""
    try:
        cfg = OmegaConf.load(run_dir / CONFIG_FILE)
    except Exception as err:
        raise UserError(f"{run_dir / CONFIG_FILE} cannot be read as YAML ({err}).") from err
    if not isinstance(cfg, DictConfig) or "model" not in cfg or "dataset" not in cfg:
        raise UserError(f"{run_dir / CONFIG_FILE} is not a ganctl training config "
                        "(no model/dataset sections).")
    return cfg
