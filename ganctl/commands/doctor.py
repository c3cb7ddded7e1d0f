"""`ganctl doctor run=<run dir>` or `sweep=<multirun dir>`: a short diagnosis of a run, finished
or still training, read from its files (no TensorFlow): where it is, the trends, the health
warnings and when they fired, the best checkpoint, and a verdict. Exit 0: healthy; 1: needs
attention (a warning still on, or the run diverged), so scripts can act on it.
"""
from __future__ import annotations

import sys
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from ganctl import rundir
from ganctl.errors import UserError
from ganctl.reporting import check_sweep_dir, read_best, read_metrics, training_status
from ganctl.training.health import active_warnings, read_events

# What the trends line shows, as the status line of train.log names them.
TRENDS = {"d_loss": "d_loss", "g_loss": "g_loss", "d_real": "D(x)", "d_fake": "D(G(z))",
          "diversity": "diversity", "r_t": "r_t", "augment_p": "ada p"}


def run(cfg: DictConfig, _hydra_dir: Path | None = None) -> int:
    if cfg.sweep:
        verdicts = [(job, _diagnose_job(job)) for job in _jobs(check_sweep_dir(cfg.sweep))]
        for job, diagnosis in verdicts:
            print(f"{job.name}: {diagnosis['where']}; {diagnosis['verdict']}")
        sick = [job.name for job, d in verdicts if d["attention"]]
        print(f"{len(verdicts)} runs, {len(sick)} need attention"
              + (f": {', '.join(sick)}" if sick else "") + ".")
        code = 1 if sick else 0
    else:
        diagnosis = diagnose(rundir.check_run_dir(cfg.run))
        print("\n".join(diagnosis["lines"]))
        code = 1 if diagnosis["attention"] else 0
    sys.stdout.flush()
    if code:
        sys.exit(code)
    return code


def _jobs(sweep_dir: Path) -> list[Path]:
    return sorted(p for p in sweep_dir.iterdir() if (p / rundir.CONFIG_FILE).is_file())


def _diagnose_job(job: Path) -> dict:
    """A sweep job's diagnosis; a job whose files cannot be read is one that needs attention."""
    try:
        return diagnose(job)
    except UserError as err:
        return {"where": "unreadable", "verdict": f"look at it: {err}", "attention": True}


def diagnose(run_dir: Path) -> dict:
    """lines (the printout), where (status), verdict and attention (bool) of one run."""
    train = OmegaConf.to_container(rundir.load_run_config(run_dir), resolve=False).get("train", {})
    rows, eval_rows = read_metrics(run_dir)
    step = rows[-1]["step"] if rows else 0
    where = training_status(run_dir, step, train.get("steps"))
    events = read_events(run_dir / rundir.HEALTH_FILE)
    active = active_warnings(events)
    best = read_best(run_dir)
    log = (run_dir / rundir.LOG_FILE).read_text(errors="replace") if (
        run_dir / rundir.LOG_FILE).is_file() else ""
    diverged = "training diverged" in log
    if where.startswith("finished early"):  # no progress is why it stopped: nothing left to act on
        active = [w for w in active if w.name != "no_progress"]

    lines = [f"run: {run_dir}", f"where: {where}"]
    if rows:
        lines.append(f"trends (first quarter -> last quarter of {len(rows)} logged steps): "
                     + ", ".join(_trend(rows, key, name) for key, name in TRENDS.items()
                                 if key in rows[0]))
    if eval_rows:
        metric = next(k for k in eval_rows[0] if k.startswith("eval/"))
        values = [r[metric] for r in eval_rows if isinstance(r.get(metric), (int, float))] or [
            float("nan")]
        lines.append(f"eval: {metric[5:]} {values[0]:.4g} at step {eval_rows[0]['step']} -> "
                     f"{values[-1]:.4g} at step {eval_rows[-1]['step']} ({len(values)} evaluations)")
    if best:
        lines.append(f"best checkpoint: step {best['step']} ({best['metric']} {best['value']:.4g}); "
                     f"ganctl sample run={run_dir} checkpoint=best")
    if not train.get("health", True):
        lines.append("health: not watched (train.health=false)")
    elif events:
        lines.append("health warnings:")
        for event in events:
            if event.get("event") == "start":
                lines.append(f"  step {event['step']}: {event['title']}: {event['evidence']}. "
                             f"Try: {event['action']}.")
            elif event.get("event") == "clear":
                lines.append(f"  step {event['step']}: {event.get('title', event['warning'])} cleared")
    else:
        lines.append(f"health: no warnings in {step} steps")

    if diverged:
        verdict = "change: the run diverged (NaN); see train.log, lower the learning rates"
    elif active:
        verdict = "change: " + "; and ".join(w.action for w in active)
    elif where.startswith("finished early"):
        verdict = (f"stop: it stopped improving; use the best checkpoint (step {best['step']})"
                   if best else "stop: it stopped improving")
    elif where.startswith("finished"):
        verdict = "healthy: finished"
    else:
        verdict = "keep going: no warning is on"
    attention = diverged or bool(active)
    lines.append(f"verdict: {verdict}" + (" (needs attention)" if attention else ""))
    return {"lines": lines, "where": where, "verdict": verdict, "attention": attention}


def _trend(rows: list[dict], key: str, name: str) -> str:
    values = [r[key] for r in rows if isinstance(r.get(key), (int, float))]
    if not values:
        return f"{name} -"
    quarter = max(len(values) // 4, 1)
    first, last = (sum(v) / len(v) for v in (values[:quarter], values[-quarter:]))
    return f"{name} {first:.3g} -> {last:.3g}"
