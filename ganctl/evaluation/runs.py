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
    from ganctl.core.components import translation_networks
    from ganctl.core.translation import load_translator
    from ganctl.metrics.features import build_extractor

    run_cfg = rundir.load_run_config(run_dir)
    translation = run_cfg.model.get("translation") is not None
    if translation:  # scored on its test split, whatever split= says (translation.py)
        generator, dataset, step = load_translator(run_dir, cfg.checkpoint, cfg.ema,
                                                   cfg.direction)
    else:
        generator, dataset, step = load_generator(run_dir, cfg.checkpoint, cfg.ema)
    name = dataset_name(run_cfg.dataset)
    extractor = build_extractor(cfg.features, dataset=dataset, dataset_name=name,
                                points=dataset.kind == "points",
                                inception_weights=cfg.inception_weights)
    if translation:
        from ganctl.evaluation.translation import score_translation

        # CycleGAN: the other generator too, for the cycle-reconstruction error.
        back = ("BtoA" if cfg.direction == "AtoB" else "AtoB")
        reverse = (load_translator(run_dir, cfg.checkpoint, cfg.ema, back)[0]
                   if "generator_ba" in translation_networks(run_cfg.model) else None)
        result = score_translation(generator, dataset, list(cfg.metrics), extractor,
                                   num=cfg.num, direction=cfg.direction, reverse=reverse,
                                   seed=cfg.seed, batch_size=cfg.batch_size)
    else:
        result = score_generator(generator, dataset, name, list(cfg.metrics), extractor,
                                 num=cfg.num, seed=cfg.seed, split=cfg.split,
                                 batch_size=cfg.batch_size, cas_epochs=cfg.cas_epochs,
                                 model_name=model_name(run_cfg.model))
        result["real_split"] = cfg.split
    result.update(run=str(run_dir), checkpoint_step=step, ema=bool(cfg.ema), dataset=name,
                  checkpoint=cfg.checkpoint or "newest")
    # One file per request, so a second `ganctl eval` with other settings keeps the first's
    # results; metrics.json is a copy of the newest, which older readers and scripts expect.
    named = OmegaConf.merge(cfg, {"split": result["real_split"]})  # a translation run's: test
    out = run_dir / rundir.EVAL_DIR / f"metrics_{request_stem(named, step)}.json"
    out.parent.mkdir(exist_ok=True)
    text = json.dumps(result, indent=2) + "\n"
    out.write_text(text)
    (run_dir / rundir.EVAL_DIR / rundir.EVAL_FILE).write_text(text)
    result["written"] = str(out)
    return result


def request_stem(cfg: DictConfig, step: int) -> str:
    """What decides an evaluation's numbers, as a file name: step, EMA, sample count, seed,
    real split, features and metrics."""
    metrics = "-".join(str(m) for m in cfg.metrics)
    return (f"step{step:06d}_{'ema' if cfg.ema else 'raw'}_num{cfg.num}_seed{cfg.seed}_"
            f"{cfg.split}_{cfg.features}_{metrics}"
            + ("" if cfg.get("direction", "AtoB") == "AtoB" else f"_{cfg.direction}"))


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
        result = json.loads(saved.read_text()) if saved.is_file() else None
        stale = result is not None and _stale(result, job, cfg)
        if result is None or stale:
            if stale:
                print(f"re-evaluating {job.name}: {stale}")
            try:
                result = evaluate_run(job, cfg)
            except UserError as err:
                print(f"skipping {job.name}: {err}")
                continue
        overrides = job / ".hydra" / "overrides.yaml"
        label = " ".join(OmegaConf.load(overrides)) if overrides.is_file() else job.name
        rows.append({"job": job.name, "overrides": label, "step": result.get("checkpoint_step"),
                     "ema": result.get("ema"), "num": result.get("num_fake"),
                     **result["metrics"]})
    if not rows:
        raise UserError(f"sweep={sweep_dir} has no finished job with a checkpoint to score.")
    sort_by = cfg.sort_by or next(k for k in rows[0] if k not in PROVENANCE_COLUMNS)
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


PROVENANCE_COLUMNS = ("job", "overrides", "step", "ema", "num")


def _stale(result: dict, job: Path, cfg: DictConfig) -> str:
    """Why a job's saved evaluation cannot stand in a table of this request ("" when it can):
    it scored an older checkpoint than the job's newest, or other settings than asked now."""
    newest = rundir.newest_saved_step(job)
    if cfg.checkpoint is None and result.get("checkpoint_step") not in (None, newest):
        return f"its results are for step {result.get('checkpoint_step')}, the newest is {newest}"
    if bool(result.get("ema", True)) != bool(cfg.ema):
        return f"its results used ema={str(result.get('ema')).lower()}"
    # num_fake is the count generated: num, give or take the balancing over classes.
    if abs(int(result.get("num_fake") or 0) - cfg.num) > cfg.num // 100:
        return f"its results used num={result.get('num_fake')}"
    if cfg.seed != result.get("seed", cfg.seed):
        return f"its results used seed={result.get('seed')}"
    if list(cfg.metrics) != ["auto"] and not set(cfg.metrics) <= _metric_families(result):
        return f"its results lack {', '.join(sorted(set(cfg.metrics) - _metric_families(result)))}"
    return ""


def _metric_families(result: dict) -> set[str]:
    """The metric names a result answers: precision_recall yields precision and recall, etc."""
    keys = set(result.get("metrics", {}))
    families = {"precision_recall": {"precision", "recall"}, "density_coverage": {"density",
                                                                                  "coverage"}}
    return keys | {name for name, parts in families.items() if parts <= keys}


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
