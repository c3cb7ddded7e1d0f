"""Scoring what `ganctl eval` is given: a run's checkpoint, two sets of samples, or every job of
a sweep gathered into one table."""
from __future__ import annotations

import csv
import json
import math
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from ganctl import rundir
from ganctl.errors import UserError
from ganctl.evaluation.scoring import LOWER_IS_BETTER, auto_metrics, evaluate, score_generator
from ganctl.evaluation.sets import is_point_set, load_image_set, load_labels

def evaluate_run(run_dir: Path, cfg: DictConfig) -> dict:
    from ganctl.core.generators import dataset_name, load_generator, model_name
    from ganctl.metrics.features import build_extractor

    generator, dataset, step = load_generator(run_dir, cfg.checkpoint, cfg.ema)
    run_cfg = rundir.load_run_config(run_dir)
    name = dataset_name(run_cfg.dataset)
    extractor = build_extractor(cfg.features, dataset=dataset, dataset_name=name,
                                points=dataset.kind == "points",
                                inception_weights=cfg.inception_weights)
    result = score_generator(generator, dataset, name, list(cfg.metrics), extractor, num=cfg.num,
                             seed=cfg.seed, split=cfg.split, batch_size=cfg.batch_size,
                             cas_epochs=cfg.cas_epochs, model_name=model_name(run_cfg.model))
    result.update(run=str(run_dir), checkpoint_step=step, ema=bool(cfg.ema), dataset=name,
                  checkpoint=cfg.checkpoint or "newest",
                  real_split=cfg.split)
    out = run_dir / rundir.EVAL_DIR / rundir.EVAL_FILE
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    result["written"] = str(out)
    return result


def evaluate_sets(cfg: DictConfig) -> dict:
    from ganctl.core.components import dataset_by_name
    from ganctl.metrics.cas import LabelledData
    from ganctl.metrics.features import build_extractor

    fake = load_image_set(cfg.fake, limit=cfg.num)
    dataset, name = dataset_by_name(cfg.real) if cfg.real else (None, None)
    real = (dataset.arrays(cfg.split, limit=cfg.num)[0] if dataset is not None
            else load_image_set(cfg.real, limit=cfg.num) if cfg.real else None)
    extractor = build_extractor(cfg.features, dataset=dataset, dataset_name=name,
                                points=is_point_set(fake), inception_weights=cfg.inception_weights)
    # An npz from `ganctl sample` of a conditional run carries the class of each image.
    fake_classes = load_labels(cfg.fake, limit=cfg.num)
    names = list(cfg.metrics)
    if names == ["auto"]:
        names = auto_metrics(is_point_set(fake), extractor,
                             conditional=fake_classes is not None and dataset is not None)
    labelled = LabelledData.from_dataset(dataset) if "cas" in names and dataset else None
    result = evaluate(fake, real, names, extractor, modes=getattr(dataset, "modes", None),
                      mode_std=getattr(dataset, "std", None), fake_classes=fake_classes,
                      labelled=labelled, seed=cfg.seed, batch_size=cfg.batch_size,
                      cas_epochs=cfg.cas_epochs)
    result.update(fake=str(cfg.fake), real=str(cfg.real))
    return result


def gather_sweep(sweep_dir: Path, cfg: DictConfig) -> dict:
    """One row per job (evaluating jobs that have no eval yet), sorted, as CSV and markdown."""
    if not sweep_dir.is_dir() or not (sweep_dir / "multirun.yaml").is_file():
        raise UserError(f"sweep={sweep_dir} is not a multirun directory (it has no multirun.yaml); "
                        "give the folder `ganctl train -m` printed, e.g. outputs/multirun/<date>/<time>.")
    rows = []
    for job in sorted(p for p in sweep_dir.iterdir() if (p / rundir.CONFIG_FILE).is_file()):
        saved = job / rundir.EVAL_DIR / rundir.EVAL_FILE
        if saved.is_file():
            result = json.loads(saved.read_text())
        else:
            try:
                result = evaluate_run(job, cfg)
            except UserError as err:
                print(f"skipping {job.name}: {err}")
                continue
        overrides = job / ".hydra" / "overrides.yaml"
        label = " ".join(OmegaConf.load(overrides)) if overrides.is_file() else job.name
        rows.append({"job": job.name, "overrides": label, "step": result.get("checkpoint_step"),
                     **result["metrics"]})
    if not rows:
        raise UserError(f"sweep={sweep_dir} has no finished job with a checkpoint to score.")
    sort_by = cfg.sort_by or next(k for k in rows[0] if k not in ("job", "overrides", "step"))
    if sort_by not in rows[0]:
        raise UserError(f"sort_by={sort_by} is not a column; columns: {', '.join(rows[0])}.")
    rows.sort(key=lambda r: sort_value(r.get(sort_by), sort_by in LOWER_IS_BETTER))
    columns = list(dict.fromkeys(k for r in rows for k in r))
    with open(sweep_dir / "eval_summary.csv", "w", newline="") as file:
        writer = csv.DictWriter(file, columns)
        writer.writeheader()
        writer.writerows(rows)
    markdown = _markdown(rows, columns)
    (sweep_dir / "eval_summary.md").write_text(markdown)
    print(markdown, end="")
    print(f"\nwrote {sweep_dir / 'eval_summary.csv'} and eval_summary.md (sorted by {sort_by})")
    return {"rows": rows, "sort_by": sort_by}


def sort_value(value, ascending: bool) -> float:
    if not isinstance(value, (int, float)) or math.isnan(value):
        return math.inf
    return value if ascending else -value


def _markdown(rows: list[dict], columns: list[str]) -> str:
    def cell(value):
        return f"{value:.4g}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(r.get(c, "")) for c in columns) + " |" for r in rows]
    return "\n".join(lines) + "\n"
