"""train.health: cheap signals of a GAN going wrong, the rules that name it, and what to do.

The compiled step adds a few numbers it nearly has already (`step_signals`); the loop hands them
to `HealthMonitor.check` only when it logs (no extra host sync). A warning is logged once when
it starts and once when it clears, in train.log, health.jsonl and TensorBoard. The rules and
their thresholds live here alone; `ganctl doctor` reads what they wrote. Nothing at import time
needs TensorFlow, so doctor stays light.
"""
from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

from ganctl.rundir import HEALTH_FILE

# What the step adds to its values when train.health is on (all float32 scalars).
SIGNALS = ("d_acc_real", "d_acc_fake", "d_sure_fake", "r_t", "g_grad_norm", "d_grad_norm",
           "diversity")
# d_sure_fake: fakes D rejects with confidence: P(real) < 2% for sigmoid losses, else an output
# a margin of 1 below the boundary (hinge's own margin).
SURE_LOGIT = math.log(0.02 / 0.98)


def step_signals(loss, real_logits, fake_logits, real_images, fake_images, d_grads, g_grads):
    """The health signals of one step, inside the compiled step (TensorFlow ops).

    D's accuracy: reals above the loss's decision boundary, fakes below it (the logit sign for
    sigmoid losses and hinge, 0.5 for LSGAN, the middle of the batch's two means for a WGAN
    critic, whose offset means nothing). r_t = E[sign(D(real) - boundary)] (Karras et al. 2020).
    diversity: the fakes' mean pairwise pixel distance over the reals' (1: as varied as the data,
    near 0: every fake alike).
    """
    import tensorflow as tf
    from keras import ops

    real_logits, fake_logits, boundary = _flat_logits(loss, real_logits, fake_logits)
    real_side = real_logits - boundary
    spread = (mean_pairwise_distance(fake_images)
              / ops.maximum(mean_pairwise_distance(real_images), 1e-12))
    return {"d_acc_real": ops.mean(ops.cast(real_side > 0, "float32")),
            "d_acc_fake": ops.mean(ops.cast(fake_logits < boundary, "float32")),
            "d_sure_fake": ops.mean(ops.cast(
                fake_logits < (SURE_LOGIT if loss.uses_sigmoid else boundary - 1.0), "float32")),
            "r_t": ops.mean(ops.sign(real_side)),
            "g_grad_norm": ops.cast(tf.linalg.global_norm(g_grads), "float32"),
            "d_grad_norm": ops.cast(tf.linalg.global_norm(d_grads), "float32"),
            "diversity": spread}


def overfitting_heuristic(loss, real_logits, fake_logits):
    """r_t = E[sign(D(real) - boundary)]: also what train.augment=ada steers by."""
    from keras import ops

    real_logits, _, boundary = _flat_logits(loss, real_logits, fake_logits)
    return ops.mean(ops.sign(real_logits - boundary))


def _flat_logits(loss, real_logits, fake_logits):
    from keras import ops

    real_logits = ops.reshape(ops.cast(real_logits, "float32"), (-1,))
    fake_logits = ops.reshape(ops.cast(fake_logits, "float32"), (-1,))
    boundary = loss.boundary
    if boundary is None:
        boundary = (ops.mean(real_logits) + ops.mean(fake_logits)) / 2
    return real_logits, fake_logits, boundary


def mean_pairwise_distance(images):
    """Mean Euclidean distance between the batch's images, over all pairs of two (B^2 * pixels
    work from one matrix product, small next to a conv step)."""
    from keras import ops

    flat = ops.reshape(ops.cast(images, "float32"), (ops.shape(images)[0], -1))
    squares = ops.sum(flat * flat, axis=1)
    distances2 = squares[:, None] + squares[None, :] - 2 * ops.matmul(flat, ops.transpose(flat))
    n = ops.cast(ops.shape(flat)[0], "float32")
    # The diagonal is 0 (up to rounding, which the clip removes); average over the n(n-1) others.
    return ops.sum(ops.sqrt(ops.maximum(distances2, 1e-12)) * (1 - ops.eye(ops.shape(flat)[0]))
                   ) / ops.maximum(n * (n - 1), 1.0)


# --- Rules: thresholds measured on healthy and broken tiny runs (README "Training health") ----
WINDOW = 3              # logged steps a rule averages over: one noisy batch never warns
SURE_FAKES = 0.9        # D overpowering: share of fakes D is sure of (healthy runs: < 0.5)
SURE_FAKES_CLEAR = 0.6
OVERFIT_R_T = 0.9       # D overfitting: r_t over this (far above train.ada_target) ...
OVERFIT_R_T_CLEAR = 0.8
OVERFIT_EPOCHS = 50     # ... once each training image was shown this many times
COLLAPSE = 0.15         # collapse: fakes' spread under this share of the reals' (healthy: >= 0.34)
COLLAPSE_CLEAR = 0.25
STALE_EVALS = 3         # no progress: evaluations without a new best (train.patience if set)

TITLES = {"d_overpowering": "D overpowering G", "d_overfitting": "D overfitting the training set",
          "collapse": "collapse: the fakes are all alike", "no_progress": "no progress"}


@dataclasses.dataclass
class HealthWarning:
    name: str
    started: int                       # step
    evidence: str
    action: str


class HealthMonitor:
    """The rules, fed each logged row; keeps which warnings are on, so each starts and clears
    once. On resume the warnings still on in health.jsonl stay on (no repeat)."""

    def __init__(self, train, run_dir: Path, dataset_size: int, images_per_step: int):
        self.t, self.run_dir = train, Path(run_dir)
        self.dataset_size, self.images_per_step = max(dataset_size, 1), images_per_step
        self.path = self.run_dir / HEALTH_FILE
        self.recent: list[dict] = []
        self.first: dict | None = None    # the first row this session, for "at first" evidence
        self.augment_p: float | None = None
        self.active = {w.name: w for w in active_warnings(read_events(self.path))}

    def check(self, step: int, row: dict) -> list[dict]:
        """The events (warnings starting or clearing) a logged row brings; written and logged."""
        self.recent = [*self.recent, {k: row[k] for k in SIGNALS if k in row}][-WINDOW:]
        self.first = self.first or {"step": step, **self.recent[0]}
        self.augment_p = row.get("augment_p")  # train.augment=ada's p, for the advice
        if len(self.recent) < WINDOW:
            return []
        mean = {k: sum(r[k] for r in self.recent) / WINDOW for k in self.recent[0]}
        epochs = step * self.images_per_step / self.dataset_size
        overfitting = mean["r_t"] > OVERFIT_R_T and epochs >= OVERFIT_EPOCHS
        verdicts = {
            "d_overfitting": (overfitting, mean["r_t"] < OVERFIT_R_T_CLEAR,
                              lambda: self._overfitting(mean, epochs)),
            "d_overpowering": (mean["d_sure_fake"] >= SURE_FAKES and not overfitting,
                               mean["d_sure_fake"] < SURE_FAKES_CLEAR,
                               lambda: self._overpowering(mean)),
            "collapse": (mean["diversity"] < COLLAPSE, mean["diversity"] > COLLAPSE_CLEAR,
                         lambda: self._collapse(mean)),
        }
        return [event for name, (on, off, explain) in verdicts.items()
                for event in self._update(name, step, on, off, explain)]

    def check_eval(self, step: int, best: dict | None, stale: int) -> list[dict]:
        """After an evaluation: `stale` evaluations since `best` was set."""
        if best is None:
            return []
        limit = self.t.patience or STALE_EVALS
        metric, value, at = best["metric"], best["value"], best["step"]
        return self._update("no_progress", step, stale >= limit, stale == 0, lambda: (
            f"{metric} has not beaten its best ({value:.4g} at step {at}) in {stale} "
            f"evaluations", f"the best checkpoint is step {at}: ganctl sample "
            f"run={self.run_dir} checkpoint=best" + ("" if self.t.patience else
                                                     f"; train.patience={limit} stops here")))

    def _overpowering(self, mean) -> tuple[str, str]:
        d_lr = self.t.d_lr
        return (f"D rejects {mean['d_sure_fake']:.0%} of fakes with confidence and accepts "
                f"{mean['d_acc_real']:.0%} of reals; G's gradient norm {mean['g_grad_norm']:.3g} "
                f"({self.first['g_grad_norm']:.3g} at step {self.first['step']})",
                f"lower D's learning rate, e.g. train.d_lr={d_lr / 10:.2g} (now {d_lr:.2g})")

    def _overfitting(self, mean, epochs) -> tuple[str, str]:
        evidence = (f"r_t = E[sign D(real)] is {mean['r_t']:.2f} after {epochs:.0f} passes over "
                    f"{self.dataset_size} training images")
        if self.t.augment == "ada":
            return evidence, (f"nothing yet: ADA is on and raising p (now {self.augment_p:.2f}); "
                              "if this stays with p near 1, more training data or a smaller D "
                              "(model.discriminator.width)")
        return evidence, "adaptive augmentation: train.augment=ada"

    def _collapse(self, mean) -> tuple[str, str]:
        return (f"the fakes' mean pairwise distance is {mean['diversity']:.0%} of the reals'",
                "let D see batch statistics: model.discriminator.minibatch_std=true")

    def _update(self, name, step, on, off, explain) -> list[dict]:
        if name not in self.active and on:
            evidence, action = explain()
            self.active[name] = HealthWarning(name, step, evidence, action)
            return [self._write({"step": step, "event": "start", "warning": name,
                                 "title": TITLES[name], "evidence": evidence, "action": action})]
        if name in self.active and off:
            started = self.active.pop(name).started
            return [self._write({"step": step, "event": "clear", "warning": name,
                                 "title": TITLES[name], "since": started})]
        return []

    def _write(self, event: dict) -> dict:
        with open(self.path, "a") as file:
            file.write(json.dumps(event) + "\n")
        return event

    def summary(self, step: int) -> str:
        return summarise(read_events(self.path), step)


def describe(event: dict) -> str:
    """One line for train.log (and TensorBoard's text dashboard)."""
    if event["event"] == "start":
        return (f"health warning at step {event['step']}: {event['title']}: {event['evidence']}. "
                f"Try: {event['action']}.")
    return (f"health: {event['title']} cleared at step {event['step']} (since step "
            f"{event['since']}).")


def read_events(path: Path) -> list[dict]:
    """health.jsonl's events; a line cut short by a kill is skipped."""
    events = []
    if Path(path).is_file():
        for line in Path(path).read_text().splitlines():
            try:
                events.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return events


def active_warnings(events: list[dict]) -> list[HealthWarning]:
    active = {}
    for event in events:
        if event.get("event") == "start":
            active[event["warning"]] = HealthWarning(event["warning"], event["step"],
                                               event["evidence"], event["action"])
        elif event.get("event") == "clear":
            active.pop(event["warning"], None)
    return list(active.values())


def summarise(events: list[dict], step: int) -> str:
    """The end-of-run line: each warning with the steps it was on."""
    spans, open_at = [], {}
    for event in events:
        if event.get("event") == "start":
            open_at[event["warning"]] = event["step"]
        elif event.get("event") == "clear" and event["warning"] in open_at:
            spans.append(f"{TITLES[event['warning']]} (steps {open_at.pop(event['warning'])}-"
                         f"{event['step']})")
    spans += [f"{TITLES[name]} (since step {at}, still on)" for name, at in open_at.items()]
    if not spans:
        return f"health: no warnings in {step} steps."
    return f"health: {len(spans)} warning(s): " + "; ".join(spans) + "."
