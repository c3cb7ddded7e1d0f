"""train(cfg, run_dir): the training loop, top to bottom, in titled phases."""
from __future__ import annotations

import logging
import os
import signal
import sys
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from omegaconf import OmegaConf
from tqdm import tqdm

from ganctl import rundir
from ganctl.core.checkpoints import Checkpoints
from ganctl.core.components import build_dataset
from ganctl.core.generators import generate
from ganctl.core.state import ADDED_LATER, TrainingState, build_training_state
from ganctl.errors import Interrupted, TrainingDiverged, UserError
from ganctl.images import save_snapshot, snapshot_columns
from ganctl.models.common import is_conditional
from ganctl.models.mode_coverage import check_pack
from ganctl.replicas import is_chief_process, replicas
from ganctl.reporting import EARLY_STOP
from ganctl.training.augment import ada_kimg
from ganctl.training.distribute import check_strategy, make_strategy
from ganctl.training.health import HealthMonitor, describe
from ganctl.training.tb_summaries import write_image, write_text
from ganctl.training.metrics_log import MetricsLog
from ganctl.training.periodic_eval import PeriodicEval
from ganctl.training.steps import make_train_step
from ganctl.training.translation_snapshots import TranslationSnapshots
from ganctl.training.translation_step import make_translation_step

log = logging.getLogger("ganctl")
logging.getLogger("absl").setLevel(logging.WARNING)  # TF's per-save INFO chatter


def train(cfg, run_dir: Path, resuming: bool = False) -> dict:
    t = cfg.train
    log.info("%s %s (train.steps=%d)", "resuming" if resuming else "new run in", run_dir, t.steps)

    # --- Devices & seed -------------------------------------------------------------------------
    strategy = make_strategy(t.strategy)  # first: a multi-worker runtime is set up before any op
    keras.utils.set_random_seed(t.seed)
    if t.deterministic:
        tf.config.experimental.enable_op_determinism()
    check_strategy(strategy, batch_size=t.batch_size, jit_compile=t.jit_compile)
    if t.patience and isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        # Only the chief evaluates: the other workers would train on and wait for it forever.
        raise UserError(f"train.patience={t.patience} stops on the chief's evaluations, which "
                        "the other workers of train.strategy=multi_worker do not see; set "
                        "train.patience=0 and stop at the best checkpoint (checkpoint=best).")
    # Packs are grouped within each replica's rows, so the per-replica batch must divide.
    check_pack(cfg.model.discriminator.get("pack", 1), t.batch_size, replicas(strategy))
    # Only the chief writes (config, logs, snapshots, checkpoints, export); other workers compute.
    chief = is_chief_process()

    # --- Dataset and training state -------------------------------------------------------------
    dataset = build_dataset(cfg.dataset)
    state = build_training_state(cfg, dataset, strategy)
    log.info("precision %s (train.precision=%s), %d replica(s) (train.strategy=%s)%s",
             state.precision, t.precision, replicas(strategy), t.strategy,
             "" if chief else "; this worker writes nothing, the chief writes the run")
    if t.augment == "ada":
        log.info("ada: p can go from 0 to 1 in %.3g kimg (train.ada_kimg=%s) of the run's %.0f kimg",
                 ada_kimg(t, state.images_per_step),
                 "null" if t.get("ada_kimg") is None else t.ada_kimg,
                 t.steps * state.images_per_step / 1000)

    # --- Checkpoint: restore the latest when resuming ------------------------------------------
    checkpoints = Checkpoints(run_dir / rundir.CHECKPOINT_DIR, t.keep_checkpoints,
                              added_later=ADDED_LATER, **state.trackables())
    start_step = _restore(checkpoints, state, run_dir, chief) if resuming else 0
    batches = _Batches(dataset, state)
    first_real = batches.start(start_step)  # (images, labels)
    if chief:  # on resume only now: a failed restore changes nothing
        _save_run_config(cfg, dataset, run_dir)
    log.info("dataset %s (%s), %s, %d params G / %d params D", dataset.image_shape,
             dataset.source, type(state.loss).__name__, state.generator.count_params(),
             state.discriminator.count_params())

    # --- Snapshots: the reals, and a fixed z so grids are comparable across steps --------------
    metrics = MetricsLog(run_dir) if chief else None  # metrics.jsonl and TensorBoard
    # A translation run shows test inputs | outputs | targets instead (translation_snapshots.py).
    snapshot_kind = TranslationSnapshots if state.translation is not None else _Snapshots
    snapshots = snapshot_kind(cfg, dataset, state, run_dir / rundir.SAMPLES_DIR, metrics)
    if chief and not resuming:
        snapshots.reals([part.numpy() for part in first_real], run_dir / rundir.REALS_FILE)
    if start_step == 0:
        snapshots(0)
        if t.on_nan == "rollback" and chief:
            checkpoints.save(0)  # so a NaN before the first periodic save has a place to go back to

    # --- Loop -------------------------------------------------------------------------------------
    train_step = (make_translation_step if state.translation is not None else make_train_step)(state)
    periodic_eval = PeriodicEval(cfg, dataset, checkpoints.directory, chief, **state.trackables())
    # The health signals come from the noise -> image step; translation steps report none yet.
    health = (HealthMonitor(t, run_dir, dataset.training_size(), state.images_per_step)
              if t.health and chief and state.translation is None else None)
    if t.health and state.translation is not None:
        log.info("health: no warnings for image-to-image runs yet (train.health watches "
                 "noise -> image GANs); watch l1 and the snapshots")
    loop = _Loop(cfg, state, checkpoints, batches, snapshots, periodic_eval, metrics, run_dir,
                 health)
    started = time.perf_counter()
    loop.run(train_step, first_real, start_step)

    # --- Final save -------------------------------------------------------------------------------
    final = int(state.step.numpy())
    exported = run_dir / rundir.GENERATOR_EXPORT
    if chief:
        if final > start_step and final not in checkpoints.steps():
            checkpoints.save(final)
        state.sampler.save(exported)
    log.info("done: step %d; %d steps trained in %.1f s%s; checkpoints in %s, generator exported "
             "to %s", final, final - start_step, time.perf_counter() - started,
             f" (resumed at step {start_step})" if resuming else "", checkpoints.directory,
             exported)
    return {"step": final, "run_dir": str(run_dir), "best": periodic_eval.best}


def _restore(checkpoints: Checkpoints, state: TrainingState, run_dir: Path, chief: bool) -> int:
    restored = checkpoints.restore()
    if restored is None:
        raise UserError(f"resume={run_dir} has no checkpoint in {checkpoints.directory}; "
                        "nothing to resume. Start a new run instead.")
    if chief:
        checkpoints.discard_after(restored)
    # The checkpoint's learning rates are kept: they differ from the config only where a NaN
    # rollback halved them, and keeping them is what makes a resume exact.
    log.info("resumed %s at step %d (g_lr %.3g, d_lr %.3g)", run_dir, restored,
             *(_value(o.learning_rate) for o in state.optimizers.values()))
    return restored


class _Batches:
    """The real batches from any step on: the order is a pure function of (seed, position), so
    any step can be continued exactly (after a resume or a rollback)."""

    def __init__(self, dataset, state: TrainingState):
        self.dataset, self.state = dataset, state

    def start(self, at_step: int):
        per_step = self.state.images_per_step
        self.iterator = iter(self.dataset.tf_dataset(
            per_step * self.state.train.steps_per_call, seed=self.state.train.seed,
            skip=at_step * per_step))
        return next(self.iterator)

    def __next__(self):
        return next(self.iterator)


class _Snapshots:
    """Grids of one fixed batch of noise (a class-conditional G draws one class per row), as
    PNG files and TensorBoard images; only the chief (which has `metrics`) writes them."""

    def __init__(self, cfg, dataset, state: TrainingState, folder: Path, metrics):
        grid = cfg.train.sample_grid
        self.state, self.folder, self.metrics = state, folder, metrics
        self.z = np.random.default_rng(cfg.train.seed).standard_normal(
            (grid, cfg.model.z_dim)).astype(np.float32)
        columns = snapshot_columns(grid)
        self.labels = (np.arange(grid) // columns % max(dataset.num_classes, 1)
                       if is_conditional(state.generator) else None)
        self.real_points = (dataset.arrays("train", limit=2000)[0]
                            if dataset.kind == "points" else None)
        self.grid = grid

    def reals(self, batch: list, path: Path) -> None:
        reals = batch[0][:self.grid]  # (images, labels)
        save_snapshot(reals, path, real_points=None if self.real_points is None else reals)

    def __call__(self, at_step: int) -> None:
        if self.metrics is None:
            return
        grid = save_snapshot(generate(self.state.sampler, self.z, self.labels),
                             self.folder / f"step_{at_step:06d}.png", real_points=self.real_points)
        write_image(self.metrics.writer, "samples", grid, at_step,
                    "fixed-noise grid (EMA G if kept)")


class _Loop:
    """The steps from start to train.steps, with what happens between them: logging, snapshots,
    evaluation, checkpoints, the NaN guard and stopping on a signal."""

    def __init__(self, cfg, state, checkpoints, batches, snapshots, periodic_eval, metrics,
                 run_dir, health=None):
        self.t, self.state, self.checkpoints, self.health = cfg.train, state, checkpoints, health
        self.batches, self.snapshots, self.periodic_eval = batches, snapshots, periodic_eval
        self.metrics, self.run_dir, self.chief = metrics, run_dir, metrics is not None
        self.rollbacks = 0

    def run(self, train_step, real_batch, start_step: int) -> None:
        t = self.t
        progress = tqdm(total=t.steps, initial=start_step, unit="step", dynamic_ncols=True,
                        disable=not (t.progress and sys.stderr.isatty()))
        stop = _StopSignals()
        self.started = self.last_time = time.perf_counter()
        self.last_step = self.first_step = current = start_step
        try:
            while current < t.steps:
                current += t.steps_per_call  # config.py: every action step is a multiple of it
                values = train_step(*real_batch)
                real_batch = next(self.batches)
                progress.update(t.steps_per_call)

                stopping = stop.signum  # read once: a signal arriving later is handled next step
                log_now = current % t.log_every == 0 or current == t.steps or stopping
                save_now = current % t.checkpoint_every == 0 or current == t.steps or stopping
                if log_now or save_now or self.periodic_eval.due(current):
                    problem = _nonfinite(current, self.state.first_nonfinite_step, values,
                                         self.state.guarded() if save_now else ())
                    if problem:
                        current = self.last_step = self.roll_back(problem)
                        real_batch = self.batches.start(current)
                        progress.n, self.last_time = current, time.perf_counter()
                        continue
                if log_now:
                    self.log(current, values, progress)
                if current % t.sample_every == 0 or current == t.steps:
                    self.snapshots(current)
                stale = 0  # evaluations without a new best, for train.patience
                if self.periodic_eval.due(current):
                    self.metrics.write(current, self.periodic_eval(current, self.state.sampler))
                    stale = self.periodic_eval.stale(current)
                    if self.health is not None:
                        self.report_health(current, self.health.check_eval(
                            current, self.periodic_eval.best, stale))
                if save_now and self.chief:
                    self.checkpoints.save(current)
                if stopping:
                    raise Interrupted(
                        f"stopped by {signal.Signals(stopping).name} at step {current}; "
                        f"checkpoint saved. Continue with: ganctl train resume={self.run_dir}",
                        128 + stopping)
                if t.patience and stale >= t.patience:
                    best = self.periodic_eval.best
                    log.info(EARLY_STOP + " %d (train.patience=%d): %s has not beaten its "
                             "best %.4g (step %d, kept in %s) in %d evaluations", current,
                             t.patience, best["metric"], best["value"], best["step"],
                             self.periodic_eval.best_dir, stale)
                    break
        finally:
            progress.close()
            if self.health is not None:
                log.info(self.health.summary(current))
            if self.metrics is not None:
                self.metrics.close()
            stop.restore()

    def log(self, current: int, values: dict, progress) -> None:
        now = time.perf_counter()
        per_step = self.state.images_per_step
        row = {k: float(v) for k, v in values.items()}
        row["images_per_s"] = (current - self.last_step) * per_step / (now - self.last_time)
        row["images_seen"] = current * per_step
        row["wall_s"] = now - self.started
        if self.health is not None:
            self.report_health(current, self.health.check(current, row))
            row["health_warnings"] = len(self.health.active)
        if self.chief:
            self.metrics.write(current, row)
        progress.set_postfix(d=f"{row['d_loss']:.3f}", g=f"{row['g_loss']:.3f}",
                             ips=f"{row['images_per_s']:.0f}")
        # The ETA from this session's average pace: on a terminal tqdm shows one, a log has none.
        done = current - self.first_step
        eta = (self.t.steps - current) * (now - self.started) / done if done > 0 else 0.0
        log.info("step %d/%d  d_loss %.4f  g_loss %.4f  D(x) %.3f  D(G(z)) %.3f  %.0f img/s  "
                 "eta %s", current, self.t.steps, row["d_loss"], row["g_loss"], row["d_real"],
                 row["d_fake"], row["images_per_s"], _duration(eta))
        self.last_step, self.last_time = current, now

    def report_health(self, current: int, events: list[dict]) -> None:
        for event in events:  # health.jsonl has them already; the log and TensorBoard too
            (log.warning if event["event"] == "start" else log.info)(describe(event))
            write_text(self.metrics.writer, "health", describe(event), current)

    def roll_back(self, problem: str) -> int:
        """on_nan=rollback: back to the newest checkpoint (none holds a NaN), learning rates
        halved; otherwise the run stops with what went wrong."""
        t, optimizers = self.t, list(self.state.optimizers.values())
        if t.on_nan != "rollback":
            raise TrainingDiverged(f"{problem} No checkpoint holds it. Lower the learning rates "
                                   "(train.g_lr, train.d_lr), try loss=wgan_gp or loss=hinge, or "
                                   "set train.on_nan=rollback.")
        self.rollbacks += 1
        rates = [_value(o.learning_rate) / 2 for o in optimizers]
        if self.rollbacks > t.nan_retries:
            raise TrainingDiverged(f"{problem} Gave up after train.nan_retries={t.nan_retries} "
                                   "rollbacks, each halving the learning rates (now g_lr "
                                   f"{2 * rates[0]:.3g}, d_lr {2 * rates[1]:.3g}). No checkpoint "
                                   "holds a NaN; lower the learning rates or change the loss.")
        restored = self.checkpoints.restore()
        if restored is None:
            raise TrainingDiverged(f"{problem} There is no checkpoint to roll back to.")
        for optimizer, rate in zip(optimizers, rates):
            optimizer.learning_rate.assign(rate)  # after the restore, which brings the old rate back
        self.state.first_nonfinite_step.assign(-1)
        log.warning("%s Rolled back to step %d, learning rates halved to g_lr %.3g, d_lr %.3g "
                    "(rollback %d of at most %d).", problem, restored, *rates, self.rollbacks,
                    t.nan_retries)
        return restored


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


def _save_run_config(cfg, dataset, run_dir: Path) -> None:
    """config.yaml: the resolved config plus which data files were really used."""
    resolved = OmegaConf.to_container(cfg, resolve=True)
    resolved["dataset"]["source"] = dataset.source
    staged = run_dir / (rundir.CONFIG_FILE + ".tmp")
    OmegaConf.save(OmegaConf.create(resolved), staged)
    os.replace(staged, run_dir / rundir.CONFIG_FILE)  # a kill mid-write must not truncate it


def _nonfinite(at_step: int, first_nonfinite_step, values, variables=()) -> str | None:
    """What went NaN or Inf and at which step, or None while everything is finite.

    The step function records the first step whose losses were not finite, so checking only
    every few steps still names the step where it happened.
    """
    bad_step = int(first_nonfinite_step.numpy())
    if bad_step >= 0:
        numbers = {k: float(v) for k, v in values.items()}
        ordered = sorted(numbers, key=lambda k: np.isfinite(numbers[k]))  # the culprits first
        losses = ", ".join(f"{k}={numbers[k]:.4g}" for k in ordered)
        return (f"training diverged: a loss became NaN or Inf at step {bad_step} (at step "
                f"{at_step}: {losses}).")
    for variable in variables:
        if not np.isfinite(keras.ops.convert_to_numpy(variable)).all():
            return f"training diverged: {variable.path} holds NaN or Inf at step {at_step}."
    return None


def _value(variable) -> float:
    return float(keras.ops.convert_to_numpy(variable))


class _StopSignals:
    """SIGINT/SIGTERM set a flag; the loop checkpoints the current step and then stops."""

    def __init__(self):
        self.signum = 0
        self.previous = {}
        for signum in (signal.SIGINT, signal.SIGTERM):
            try:
                self.previous[signum] = signal.signal(signum, self._handle)
            except ValueError:  # not the main thread
                pass

    def _handle(self, signum, frame):
        self.signum = signum

    def restore(self):
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)
