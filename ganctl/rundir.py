"""What a run directory holds, and reading it back safely. No TensorFlow here."""
from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from ganctl.errors import UserError

CONFIG_FILE = "config.yaml"          # resolved config, with dataset.source filled in
CHECKPOINT_DIR = "checkpoints"
BEST_DIR = "best"                    # under CHECKPOINT_DIR: train.eval_every's best checkpoint
SAMPLES_DIR = "samples"
METRICS_FILE = "metrics.jsonl"
GENERATOR_EXPORT = "generator.keras"
REALS_FILE = "reals.png"             # a batch of training data, as the first snapshot
TENSORBOARD_DIR = "tensorboard"
LOG_FILE = "train.log"               # Hydra's job log, named after the job
STATUS_FILE = "status.json"          # sweep jobs: ok / failed / interrupted, for the summary
EVAL_DIR = "eval"                    # `ganctl eval run=` results
EVAL_FILE = "metrics.json"
EXPORT_DIR = "export"                # `ganctl export`'s default folder
EXPORT_LOG = "exports.jsonl"         # under EXPORT_DIR: one line per export, wherever it went


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
