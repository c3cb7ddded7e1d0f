"""`ganctl eval`: score a run, any two sets of samples, or gather a sweep into one table."""
from __future__ import annotations

import os
from pathlib import Path

from omegaconf import DictConfig

from ganctl import rundir


def run(cfg: DictConfig, _hydra_dir: Path | None = None) -> dict:
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    from ganctl.evaluation.runs import evaluate_run, evaluate_sets, gather_sweep

    if cfg.sweep:
        return gather_sweep(Path(cfg.sweep), cfg)
    if cfg.run:
        result = evaluate_run(rundir.check_run_dir(cfg.run), cfg)
    else:
        result = evaluate_sets(cfg)
    print_table(result)
    return result


def print_table(result: dict) -> None:
    features = result["features"]
    print(f"{'metric':<18} value")
    for name, value in result["metrics"].items():
        print(f"{name:<18} {value:.6g}")
    print(f"\n{result['num_fake']} fake vs {result['num_real']} real samples; features: "
          f"{features.get('name', '?')} ({features['dim']}-d); seed {result['seed']}")
    if "cas" in result.get("provenance", {}):
        cas = result["provenance"]["cas"]
        epochs = f"{cas['epochs']} epoch{'s' if cas['epochs'] != 1 else ''}"
        print(f"cas: classifiers trained {epochs} on {cas['train_fake']} generated "
              f"/ {cas['train_real']} real images, tested on {cas['test_real']} real test "
              f"images (chance {cas['chance']:.3g})")
    for note in result.get("notes", []):
        print(f"note: {note}")
    if "checkpoint_step" in result:
        print(f"checkpoint step {result['checkpoint_step']} ({'EMA' if result['ema'] else 'raw'} "
              f"generator); written to {result['written']}")
