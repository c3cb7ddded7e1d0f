"""`ganctl export run=<run dir> format=savedmodel|tflite|keras`: the generator, ready to ship."""
from __future__ import annotations

import os
from pathlib import Path

from omegaconf import DictConfig

from ganctl.errors import UserError
from ganctl import rundir

_SUFFIX = {"tflite": ".tflite", "keras": ".keras"}


def run(cfg: DictConfig, _hydra_dir: Path | None = None) -> Path:
    run_dir = rundir.check_run_dir(cfg.run)
    out = Path(cfg.out).expanduser() if cfg.out else None
    if out is not None:
        _check_out(out, cfg.format)
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    from ganctl.core.generators import load_generator
    from ganctl.exporting import append_log, default_name, export_generator

    generator, dataset, step = load_generator(run_dir, cfg.checkpoint, cfg.ema)
    if out is None:
        out = run_dir / rundir.EXPORT_DIR / default_name(cfg.format, step, cfg.ema)
        _check_out(out, cfg.format)
    record = export_generator(generator, dataset, cfg.format, out)
    record.update(step=step, checkpoint=cfg.checkpoint or "newest", ema=bool(cfg.ema))
    append_log(run_dir / rundir.EXPORT_DIR / rundir.EXPORT_LOG, record)   # report.html lists it
    print(f"wrote {out}  ({cfg.format}, step {step}, {'EMA' if cfg.ema else 'raw'} G): "
          f"{record['signature']}")
    return out


def _check_out(out: Path, fmt: str) -> None:
    """Never write over anything, and catch a path that cannot be the format's."""
    if out.exists():
        raise UserError(f"out={out} already exists; ganctl export never overwrites. Give a new "
                        "path, or delete the old one first.")
    for parent in out.parents:
        if parent.exists() and not parent.is_dir():
            raise UserError(f"out={out} is inside '{parent}', which is a file, not a directory.")
    if fmt == "keras" and out.suffix != ".keras":
        raise UserError(f"out={out}: format=keras writes a .keras file, and Keras needs the name "
                        f"to end in .keras; e.g. out={out.with_suffix('.keras')}.")
    if fmt == "tflite" and out.suffix != ".tflite":
        raise UserError(f"out={out}: format=tflite writes one .tflite file; give a name ending "
                        f"in .tflite, e.g. out={out.with_suffix('.tflite')}.")
