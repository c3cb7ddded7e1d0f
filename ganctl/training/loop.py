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

from ganctl.errors import Interrupted, TrainingDiverged, UserError
from ganctl.models.common import is_conditional
from ganctl.models.mode_coverage import check_pack
from ganctl.training import rundir
from ganctl.training.augment import make_augment
from ganctl.training.checkpoints import Checkpoints, rng_states
from ganctl.training.ema import ema_schedule
from ganctl.training.distribute import (check_strategy, is_chief_process, make_strategy,
                                        replicas, synchronize_batch_norm)
from ganctl.training.components import (build_dataset, build_discriminator, build_generator,
                                        build_loss, clone_generator)
from ganctl.training.metrics_log import MetricsLog
from ganctl.training.periodic_eval import PeriodicEval
from ganctl.training.snapshots import save_snapshot, snapshot_columns
from ganctl.training.steps import (dtype_policy, generate, make_optimizer, make_train_step,
                                   resolve_precision)

log = logging.getLogger("ganctl")
logging.getLogger("absl").setLevel(logging.WARNING)  # TF's per-save INFO chatter


def train(cfg, run_dir: Path, resuming: bool = False) -> dict:
    t = cfg.train

    # --- Devices & seed -------------------------------------------------------------------------
    strategy = make_strategy(t.strategy)  # first: a multi-worker runtime is set up before any op
    keras.utils.set_random_seed(t.seed)
    if t.deterministic:
        tf.config.experimental.enable_op_determinism()
    device = "GPU" if tf.config.list_physical_devices("GPU") else "CPU"
    precision = resolve_precision(t.precision, device)  # the dtype policy the networks get
    check_strategy(strategy, batch_size=t.batch_size, jit_compile=t.jit_compile)
    check_pack(cfg.model.discriminator.get("pack", 1), t.batch_size, replicas(strategy))
    # Only the chief writes (config, logs, snapshots, checkpoints, export); other workers compute.
    chief = is_chief_process()
    log.info("precision %s (train.precision=%s) on %s, %d replica(s) (train.strategy=%s)%s",
             precision, t.precision, device, replicas(strategy), t.strategy,
             "" if chief else "; this worker writes nothing, the chief writes the run")

    # --- Dataset ---------------------------------------------------------------------------------
    dataset = build_dataset(cfg.dataset)
    d_steps = cfg.loss.d_steps_per_g_step
    images_per_step = t.batch_size * d_steps  # real examples D sees per G update

    # --- Networks --------------------------------------------------------------------------------
    # Everything with state is made in the strategy's scope: mirrored on every replica.
    with strategy.scope(), dtype_policy(precision):  # layers take the policy when built
        generator = build_generator(cfg.model, dataset)
        discriminator = build_discriminator(cfg.model, dataset)
        ema_generator = clone_generator(generator) if t.ema > 0 else None
    if replicas(strategy) > 1:
        synchronize_batch_norm(generator, discriminator)

    # --- Optimizers & loss -----------------------------------------------------------------------
    loss = build_loss(cfg.loss)
    with strategy.scope():
        g_optimizer = make_optimizer(t.g_lr, t.g_beta1, t.g_beta2, precision)
        d_optimizer = make_optimizer(t.d_lr, t.d_beta1, t.d_beta2, precision)
        # Built now so a restore fills the slots immediately and can be checked for a full match.
        g_optimizer.build(generator.trainable_variables)
        d_optimizer.build(discriminator.trainable_variables)
        step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        first_nonfinite_step = tf.Variable(-1, dtype=tf.int64, trainable=False)
        seed_generator = keras.random.SeedGenerator(t.seed)

    # --- Checkpoint: restore the latest when resuming ------------------------------------------
    trackables = dict(generator=generator, discriminator=discriminator, g_optimizer=g_optimizer,
                      d_optimizer=d_optimizer, step=step, rng=seed_generator.state.value,
                      layer_rngs=rng_states(generator) + rng_states(discriminator))
    if ema_generator is not None:
        trackables["ema_generator"] = ema_generator
    checkpoints = Checkpoints(run_dir / rundir.CHECKPOINT_DIR, t.keep_checkpoints, **trackables)
    if resuming:
        restored = checkpoints.restore()
        if restored is None:
            raise UserError(f"resume={run_dir} has no checkpoint in {checkpoints.directory}; "
                            "nothing to resume. Start a new run instead.")
        if chief:
            checkpoints.discard_after(restored)
        # The checkpoint's learning rates are kept: they differ from the config only where a NaN
        # rollback halved them, and keeping them is what makes a resume exact.
        log.info("resumed %s at step %d (g_lr %.3g, d_lr %.3g)", run_dir, restored,
                 _value(g_optimizer.learning_rate), _value(d_optimizer.learning_rate))
    start_step = int(step.numpy())

    def batches_from(at_step: int):
        # The order is a pure function of (seed, position), so any step can be continued exactly.
        return iter(dataset.tf_dataset(images_per_step * t.steps_per_call, seed=t.seed,
                                       skip=at_step * images_per_step))

    batches = batches_from(start_step)
    first_real = next(batches)  # (images, labels)
    if chief:  # on resume only now: a failed restore changes nothing
        _save_run_config(cfg, dataset, run_dir)
    log.info("dataset %s (%s), %s on %s, %d params G / %d params D", dataset.image_shape,
             dataset.source, type(loss).__name__, device, generator.count_params(),
             discriminator.count_params())

    # --- Snapshots: the reals, and a fixed z so grids are comparable across steps --------------
    samples_dir = run_dir / rundir.SAMPLES_DIR
    fixed_z = np.random.default_rng(t.seed).standard_normal(
        (t.sample_grid, cfg.model.z_dim)).astype(np.float32)
    # A class-conditional G draws one class per row (the first rows' worth of classes).
    columns = snapshot_columns(t.sample_grid)
    fixed_labels = (np.arange(t.sample_grid) // columns % max(dataset.num_classes, 1)
                    if is_conditional(generator) else None)
    real_points = dataset.arrays("train", limit=2000)[0] if dataset.kind == "points" else None
    if chief and not resuming:
        reals = first_real[0].numpy()[:t.sample_grid]
        save_snapshot(reals, run_dir / "reals.png", real_points=None if real_points is None else reals)

    def snapshot(at_step: int) -> None:
        if not chief:
            return
        sampler = ema_generator if ema_generator is not None else generator
        save_snapshot(generate(sampler, fixed_z, fixed_labels),
                      samples_dir / f"step_{at_step:06d}.png", real_points=real_points)

    # --- Loop -------------------------------------------------------------------------------------
    train_step = make_train_step(
        generator=generator, discriminator=discriminator, ema_generator=ema_generator, loss=loss,
        g_optimizer=g_optimizer, d_optimizer=d_optimizer, seed_generator=seed_generator,
        z_dim=cfg.model.z_dim, ema_decay=ema_schedule(t, images_per_step), step=step,
        first_nonfinite_step=first_nonfinite_step, jit_compile=t.jit_compile,
        update_rule=t.update_rule, joint_d_call=t.joint_d_call, steps_per_call=t.steps_per_call,
        augment=make_augment(t.augment_policy if t.augment == "diffaug" else "none", seed_generator),
        strategy=strategy)
    metrics = MetricsLog(run_dir) if chief else None
    periodic_eval = PeriodicEval(cfg, dataset, checkpoints.directory, chief, **trackables)
    progress = tqdm(total=t.steps, initial=start_step, unit="step", dynamic_ncols=True,
                    disable=not (t.progress and sys.stderr.isatty()))
    # Everything a checkpoint holds that can go NaN; checked before each save.
    guarded = [*generator.weights, *discriminator.weights, *g_optimizer.variables,
               *d_optimizer.variables]
    if ema_generator is not None:
        guarded += ema_generator.weights

    def roll_back(problem: str, attempt: int) -> int:
        """on_nan=rollback: back to the newest checkpoint (none holds a NaN), learning rates halved."""
        if t.on_nan != "rollback":
            raise TrainingDiverged(f"{problem} No checkpoint holds it. Lower the learning rates "
                                   "(train.g_lr, train.d_lr), try loss=wgan_gp or loss=hinge, or "
                                   "set train.on_nan=rollback.")
        rates = [_value(o.learning_rate) / 2 for o in (g_optimizer, d_optimizer)]
        if attempt > t.nan_retries:
            raise TrainingDiverged(f"{problem} Gave up after train.nan_retries={t.nan_retries} "
                                   "rollbacks, each halving the learning rates (now g_lr "
                                   f"{2 * rates[0]:.3g}, d_lr {2 * rates[1]:.3g}). No checkpoint "
                                   "holds a NaN; lower the learning rates or change the loss.")
        restored = checkpoints.restore()
        if restored is None:
            raise TrainingDiverged(f"{problem} There is no checkpoint to roll back to.")
        for optimizer, rate in zip((g_optimizer, d_optimizer), rates):
            optimizer.learning_rate.assign(rate)  # after the restore, which brings the old rate back
        first_nonfinite_step.assign(-1)
        log.warning("%s Rolled back to step %d, learning rates halved to g_lr %.3g, d_lr %.3g "
                    "(rollback %d of at most %d).", problem, restored, *rates, attempt,
                    t.nan_retries)
        return restored

    stop = _StopSignals()
    started = last_time = time.perf_counter()
    last_step = start_step
    rollbacks = 0
    if start_step == 0:
        snapshot(0)
        if t.on_nan == "rollback" and chief:
            checkpoints.save(0)  # so a NaN before the first periodic save has a place to go back to
    try:
        real_batch = first_real
        current = start_step
        while current < t.steps:
            current += t.steps_per_call  # validate.py: every action step is a multiple of it
            values = train_step(*real_batch)
            real_batch = next(batches)
            progress.update(t.steps_per_call)

            stopping = stop.signum  # read once: a signal arriving later is handled next step
            log_now = current % t.log_every == 0 or current == t.steps or stopping
            save_now = current % t.checkpoint_every == 0 or current == t.steps or stopping
            if log_now or save_now or periodic_eval.due(current):
                problem = _nonfinite(current, first_nonfinite_step, values,
                                     guarded if save_now else ())
                if problem:
                    rollbacks += 1
                    current = last_step = roll_back(problem, rollbacks)
                    batches = batches_from(current)
                    real_batch = next(batches)
                    progress.n, last_time = current, time.perf_counter()
                    continue
            if log_now:
                now = time.perf_counter()
                row = {k: float(v) for k, v in values.items()}
                row["images_per_s"] = (current - last_step) * images_per_step / (now - last_time)
                row["images_seen"] = current * images_per_step
                row["wall_s"] = now - started
                if chief:
                    metrics.write(current, row)
                progress.set_postfix(d=f"{row['d_loss']:.3f}", g=f"{row['g_loss']:.3f}",
                                     ips=f"{row['images_per_s']:.0f}")
                log.info("step %d/%d  d_loss %.4f  g_loss %.4f  D(x) %.3f  D(G(z)) %.3f  "
                             "%.0f img/s", current, t.steps, row["d_loss"], row["g_loss"],
                             row["d_real"], row["d_fake"], row["images_per_s"])
                last_step, last_time = current, now
            if current % t.sample_every == 0 or current == t.steps:
                snapshot(current)
            if periodic_eval.due(current):
                metrics.write(current, periodic_eval(
                    current, ema_generator if ema_generator is not None else generator))
            if save_now and chief:
                checkpoints.save(current)
            if stopping:
                raise Interrupted(
                    f"stopped by {signal.Signals(stopping).name} at step {current}; checkpoint "
                    f"saved. Continue with: ganctl train resume={run_dir}", 128 + stopping)
    finally:
        progress.close()
        if metrics is not None:
            metrics.close()
        stop.restore()

    # --- Final save --------------------------------------------------------------------------------
    final = int(step.numpy())
    exported = run_dir / rundir.GENERATOR_EXPORT
    if chief:
        if final > start_step and final not in checkpoints.steps():
            checkpoints.save(final)
        (ema_generator if ema_generator is not None else generator).save(exported)
    log.info("done: %d steps in %.1f s; checkpoints in %s, generator exported to %s",
             final, time.perf_counter() - started, checkpoints.directory, exported)
    return {"step": final, "run_dir": str(run_dir), "best": periodic_eval.best}


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
