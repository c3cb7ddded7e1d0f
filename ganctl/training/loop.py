"""train(cfg, run_dir): the training loop, top to bottom, in titled phases."""
from __future__ import annotations

import logging
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
from ganctl.training import rundir
from ganctl.training.checkpoints import Checkpoints
from ganctl.training.components import (build_dataset, build_discriminator, build_generator,
                                        build_loss, clone_generator)
from ganctl.training.metrics_log import MetricsLog
from ganctl.training.periodic_eval import PeriodicEval
from ganctl.training.snapshots import save_snapshot
from ganctl.training.steps import generate, make_train_step

log = logging.getLogger("ganctl")
logging.getLogger("absl").setLevel(logging.WARNING)  # TF's per-save INFO chatter


def train(cfg, run_dir: Path, resuming: bool = False) -> dict:
    t = cfg.train

    # --- Seed & device -------------------------------------------------------------------------
    keras.utils.set_random_seed(t.seed)
    if t.deterministic:
        tf.config.experimental.enable_op_determinism()
    device = "GPU" if tf.config.list_physical_devices("GPU") else "CPU"

    # --- Dataset ---------------------------------------------------------------------------------
    dataset = build_dataset(cfg.dataset)
    d_steps = cfg.loss.d_steps_per_g_step
    images_per_step = t.batch_size * d_steps  # real examples D sees per G update

    # --- Networks --------------------------------------------------------------------------------
    generator = build_generator(cfg.model, dataset)
    discriminator = build_discriminator(cfg.model, dataset)
    ema_generator = clone_generator(generator) if t.ema > 0 else None

    # --- Optimizers & loss -----------------------------------------------------------------------
    loss = build_loss(cfg.loss)
    g_optimizer = keras.optimizers.Adam(t.g_lr, beta_1=t.g_beta1, beta_2=t.g_beta2)
    d_optimizer = keras.optimizers.Adam(t.d_lr, beta_1=t.d_beta1, beta_2=t.d_beta2)
    # Built now so a restore fills the slots immediately and can be checked for a full match.
    g_optimizer.build(generator.trainable_variables)
    d_optimizer.build(discriminator.trainable_variables)

    # --- Checkpoint: restore the latest when resuming ------------------------------------------
    step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
    first_nonfinite_step = tf.Variable(-1, dtype=tf.int64, trainable=False)
    seed_generator = keras.random.SeedGenerator(t.seed)
    trackables = dict(generator=generator, discriminator=discriminator, g_optimizer=g_optimizer,
                      d_optimizer=d_optimizer, step=step, rng=seed_generator.state.value)
    if ema_generator is not None:
        trackables["ema_generator"] = ema_generator
    checkpoints = Checkpoints(run_dir / rundir.CHECKPOINT_DIR, t.keep_checkpoints, **trackables)
    if resuming:
        restored = checkpoints.restore()
        if restored is None:
            raise UserError(f"resume={run_dir} has no checkpoint in {checkpoints.directory}; "
                            "nothing to resume. Start a new run instead.")
        # The learning rate is stored in the checkpoint; the config is the source of truth.
        g_optimizer.learning_rate.assign(t.g_lr)
        d_optimizer.learning_rate.assign(t.d_lr)
        log.info("resumed %s at step %d", run_dir, restored)
    start_step = int(step.numpy())

    batches = iter(dataset.tf_dataset(images_per_step, seed=t.seed,
                                      skip=start_step * images_per_step))
    first_real, _ = next(batches)
    if not resuming:
        _save_run_config(cfg, dataset, run_dir)
    log.info("dataset %s (%s), %s on %s, %d params G / %d params D", dataset.image_shape,
             dataset.source, type(loss).__name__, device, generator.count_params(),
             discriminator.count_params())

    # --- Snapshots: the reals, and a fixed z so grids are comparable across steps --------------
    samples_dir = run_dir / rundir.SAMPLES_DIR
    fixed_z = np.random.default_rng(t.seed).standard_normal(
        (t.sample_grid, cfg.model.z_dim)).astype(np.float32)
    real_points = dataset.arrays("train", limit=2000)[0] if dataset.kind == "points" else None
    if not resuming:
        reals = first_real.numpy()[:t.sample_grid]
        save_snapshot(reals, run_dir / "reals.png", real_points=None if real_points is None else reals)

    def snapshot(at_step: int) -> None:
        sampler = ema_generator if ema_generator is not None else generator
        save_snapshot(generate(sampler, fixed_z), samples_dir / f"step_{at_step:06d}.png",
                      real_points=real_points)

    # --- Loop -------------------------------------------------------------------------------------
    train_step = make_train_step(
        generator=generator, discriminator=discriminator, ema_generator=ema_generator, loss=loss,
        g_optimizer=g_optimizer, d_optimizer=d_optimizer, seed_generator=seed_generator,
        z_dim=cfg.model.z_dim, ema_decay=t.ema, step=step,
        first_nonfinite_step=first_nonfinite_step, jit_compile=t.jit_compile)
    metrics = MetricsLog(run_dir)
    periodic_eval = PeriodicEval(cfg, dataset, checkpoints.directory, **trackables)
    progress = tqdm(total=t.steps, initial=start_step, unit="step", dynamic_ncols=True,
                    disable=not (t.progress and sys.stderr.isatty()))
    stop = _StopSignals()
    started = last_time = time.perf_counter()
    last_step = start_step
    if start_step == 0:
        snapshot(0)
    try:
        real_batch = first_real
        for current in range(start_step + 1, t.steps + 1):
            values = train_step(real_batch)
            real_batch, _ = next(batches)
            progress.update(1)

            if current % t.log_every == 0 or current == t.steps or stop.signum:
                _check_finite(first_nonfinite_step, values)
                now = time.perf_counter()
                row = {k: float(v) for k, v in values.items()}
                row["images_per_s"] = (current - last_step) * images_per_step / (now - last_time)
                row["images_seen"] = current * images_per_step
                row["wall_s"] = now - started
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
            if current % t.checkpoint_every == 0 or current == t.steps or stop.signum:
                _check_finite(first_nonfinite_step, values, weights=generator.weights
                              + discriminator.weights)
                checkpoints.save(current)
            if stop.signum:
                raise Interrupted(
                    f"stopped by signal {stop.signum} at step {current}; checkpoint saved. "
                    f"Continue with: ganctl train resume={run_dir}", 128 + stop.signum)
    finally:
        progress.close()
        metrics.close()
        stop.restore()

    # --- Final save --------------------------------------------------------------------------------
    final = int(step.numpy())
    if final > start_step and final not in checkpoints.steps():
        checkpoints.save(final)
    exported = run_dir / rundir.GENERATOR_EXPORT
    (ema_generator if ema_generator is not None else generator).save(exported)
    log.info("done: %d steps in %.1f s; checkpoints in %s, generator exported to %s",
             final, time.perf_counter() - started, checkpoints.directory, exported)
    return {"step": final, "run_dir": str(run_dir)}


def _save_run_config(cfg, dataset, run_dir: Path) -> None:
    """config.yaml: the resolved config plus which data files were really used."""
    resolved = OmegaConf.to_container(cfg, resolve=True)
    resolved["dataset"]["source"] = dataset.source
    OmegaConf.save(OmegaConf.create(resolved), run_dir / rundir.CONFIG_FILE)


def _check_finite(first_nonfinite_step, values, weights=()) -> None:
    bad_step = int(first_nonfinite_step.numpy())
    if bad_step >= 0:
        losses = ", ".join(f"{k}={float(v):.4g}" for k, v in values.items())
        raise TrainingDiverged(f"training diverged: a loss became NaN or Inf at step {bad_step} "
                               f"(latest values: {losses}). No checkpoint was written after it. "
                               "Lower the learning rates (train.g_lr, train.d_lr) or try "
                               "loss=wgan_gp / loss=hinge.")
    for weight in weights:
        if not np.isfinite(keras.ops.convert_to_numpy(weight)).all():
            raise TrainingDiverged(f"training diverged: weight {weight.path} holds NaN or Inf; "
                                   "no checkpoint was written with it. Lower the learning rates.")


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
