"""train.eval_every: score the generator on a small sample during training and keep the best."""
from __future__ import annotations

import json
import logging
from pathlib import Path

from ganctl.core.checkpoints import Checkpoints
from ganctl.core.generators import dataset_name
from ganctl.evaluation import LOWER_IS_BETTER, headline, score_generator
from ganctl.metrics.features import build_extractor
from ganctl.rundir import BEST_DIR, BEST_FILE

log = logging.getLogger("ganctl")


class PeriodicEval:
    """Every `train.eval_every` steps: metrics into metrics.jsonl, and checkpoints/best/.

    `best` follows the first value of the first metric in train.eval_metrics (lower is better
    for FID/KID, higher for the rest).
    """

    def __init__(self, cfg, dataset, checkpoint_dir: Path, chief: bool = True, **trackables):
        t = cfg.train
        # Only the chief of a multi-worker run evaluates: it is the one that writes.
        self.every = t.eval_every if chief else 0
        self.num, self.metrics, self.seed = t.eval_num, list(t.eval_metrics), t.seed
        self.dataset, self.name = dataset, dataset_name(cfg.dataset)
        self.best = None
        if not self.every:
            return
        self.extractor = build_extractor("auto", dataset=dataset, dataset_name=self.name,
                                         points=dataset.kind == "points")
        self.best_dir = checkpoint_dir / BEST_DIR
        self.best_file = self.best_dir / BEST_FILE
        self.best = json.loads(self.best_file.read_text()) if self.best_file.is_file() else None
        # The same kill-safe saves as the run's own checkpoints, keeping only the best.
        self.checkpoints = Checkpoints(self.best_dir, keep=1, **trackables)

    def stale(self, step: int) -> int:
        """Evaluations since the best one (0 when `step`'s was the best), also after a resume."""
        return (step - self.best["step"]) // self.every if self.best else 0

    def due(self, step: int) -> bool:
        return bool(self.every) and step % self.every == 0

    def __call__(self, step: int, generator) -> dict:
        result = score_generator(generator, self.dataset, self.name, self.metrics, self.extractor,
                                 num=self.num, seed=self.seed)
        name, value = headline(result)
        lower = name in LOWER_IS_BETTER
        if self.best is None or (value < self.best["value"] if lower else value > self.best["value"]):
            self.checkpoints.save(step)
            self.best = {"metric": name, "value": value, "step": step}
            self.best_file.write_text(json.dumps(self.best) + "\n")
            log.info("eval at step %d: %s %.4g (new best, saved to %s)", step, name, value, self.best_dir)
        else:
            log.info("eval at step %d: %s %.4g (best %.4g at step %d)", step, name, value,
                     self.best["value"], self.best["step"])
        return {f"eval/{k}": v for k, v in result["metrics"].items()}
