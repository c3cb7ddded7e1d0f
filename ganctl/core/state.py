"""The training state: everything a run trains, averages, counts and checkpoints.

Built in one place from the config, so the training loop, the benchmark, the in-training
evaluation and the tests cannot drift apart. Networks, their optimizers and their averages are
kept by name, so a model with two generators and two discriminators (image-to-image
translation) fits the same object; `generator`/`discriminator` name the usual pair.
"""
from __future__ import annotations

import contextlib
import dataclasses
import re
from pathlib import Path

import keras
import tensorflow as tf

from ganctl.core.checkpoints import rng_states
from ganctl.core.image_pool import ImagePool
from ganctl.errors import UserError
from ganctl.core.components import (build_discriminator, build_generator, build_objective,
                                    build_translation_networks, clone_generator, network_role)
from ganctl.replicas import replicas, synchronize_batch_norm

# Checkpoint names of the usual pair's optimizers, as runs have always saved them; networks
# added later get "<network>_optimizer".
OPTIMIZER_NAMES = {"generator": "g_optimizer", "discriminator": "d_optimizer"}
# What checkpoints of older ganctl versions lack, so their runs still resume (ada's r_t sum: an
# old run's first adjustment of p sees one interval's sum from 0).
ADDED_LATER = ("augment_r_t",)


@dataclasses.dataclass
class TrainingState:
    networks: dict[str, keras.Model]          # trained, by name
    optimizers: dict[str, keras.optimizers.Optimizer]   # one per trained network
    learning_rates: dict[str, float]          # each optimizer's base rate (before any schedule)
    averages: dict[str, keras.Model]          # EMA copies, keyed like `networks`
    loss: object
    step: tf.Variable                         # training steps done
    first_nonfinite_step: tf.Variable         # -1 while every loss has been finite
    seed_generator: keras.random.SeedGenerator
    strategy: object                          # the tf.distribute strategy that made the variables
    precision: str                            # the Keras dtype policy the networks were built with
    z_dim: int
    d_steps: int                              # D updates per training step
    train: object                             # the train config node (options of the step)
    augment_probability: tf.Variable | None = None  # train.augment=ada's p, else None
    augment_r_t_sum: tf.Variable | None = None   # ada: r_t summed over the steps since p last moved
    augment_seeds: keras.random.SeedGenerator | None = None  # diffaug, ada (training/augment.py)
    translation: object = None                # model.translation of an image-to-image model
    # CycleGAN: each discriminator's history of fakes (core/image_pool.py), keyed like `networks`
    pools: dict = dataclasses.field(default_factory=dict)

    @property
    def generator(self) -> keras.Model:
        return self.networks["generator"]

    @property
    def discriminator(self) -> keras.Model:
        return self.networks["discriminator"]

    @property
    def ema_generator(self) -> keras.Model | None:
        return self.averages.get("generator")

    @property
    def sampler(self) -> keras.Model:
        """The generator samples come from: the average when the run keeps one."""
        return self.ema_generator or self.generator

    @property
    def images_per_step(self) -> int:
        """Real examples D sees per training step (G's updates take none)."""
        return self.train.batch_size * self.d_steps

    def trackables(self) -> dict:
        """What a checkpoint holds, under the names every ganctl run has saved them by."""
        found = dict(self.networks)
        found.update({OPTIMIZER_NAMES.get(name, f"{name}_optimizer"): optimizer
                      for name, optimizer in self.optimizers.items()})
        found.update({f"ema_{name}": average for name, average in self.averages.items()})
        found.update({f"pool_{name}": pool for name, pool in self.pools.items()})
        found.update(step=self.step, rng=self.seed_generator.state.value,
                     layer_rngs=[s for network in self.networks.values()
                                 for s in rng_states(network)])
        if self.augment_probability is not None:  # only then: older runs restore as they were
            found.update(augment_p=self.augment_probability, augment_r_t=self.augment_r_t_sum)
        return found

    def guarded(self) -> list:
        """Every checkpointed variable that can go NaN: checked before each save."""
        return ([w for network in self.networks.values() for w in network.weights]
                + [v for optimizer in self.optimizers.values() for v in optimizer.variables]
                + [w for average in self.averages.values() for w in average.weights])


def build_training_state(cfg, dataset, strategy=None) -> TrainingState:
    """G, D, the EMA copy, both optimizers (built, so a restore fills their slots at once and
    can be checked for a full match), the counters and the RNG, all in the strategy's scope."""
    t = cfg.train
    strategy = strategy or tf.distribute.get_strategy()
    device = "GPU" if tf.config.list_physical_devices("GPU") else "CPU"
    precision = resolve_precision(t.precision, device)
    translation = cfg.model.get("translation")
    with strategy.scope(), dtype_policy(precision):  # layers take the policy when built
        if translation is not None:
            networks = build_translation_networks(cfg.model, dataset)
        else:
            networks = {"generator": build_generator(cfg.model, dataset),
                        "discriminator": build_discriminator(cfg.model, dataset)}
        averages = ({name: clone_generator(network) for name, network in networks.items()
                     if network_role(name) == "generator"} if t.ema > 0 else {})
    if replicas(strategy) > 1:
        if translation is not None and translation.kind == "cyclegan":
            raise UserError(f"model=cyclegan trains on one device: each discriminator's history "
                            f"pool of fakes is not shared between replicas, and "
                            f"train.strategy={t.strategy} gives {replicas(strategy)}; set "
                            "train.strategy=single.")
        synchronize_batch_norm(*networks.values())
    # Every generator ("generator", "generator_ba", ...) learns with G's settings, every
    # discriminator with D's.
    betas = {"generator": (t.g_lr, t.g_beta1, t.g_beta2),
             "discriminator": (t.d_lr, t.d_beta1, t.d_beta2)}
    with strategy.scope():
        optimizers = {name: make_optimizer(*betas[network_role(name)], precision)
                      for name in networks}
        for name, optimizer in optimizers.items():
            optimizer.build(networks[name].trainable_variables)
        step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        first_nonfinite_step = tf.Variable(-1, dtype=tf.int64, trainable=False)
        seed_generator = keras.random.SeedGenerator(t.seed)
        ada = t.augment == "ada"
        augment_probability, augment_r_t_sum = (
            (tf.Variable(0.0, dtype=tf.float32, trainable=False, name="augment_p"),
             tf.Variable(0.0, dtype=tf.float32, trainable=False, name="augment_r_t"))
            if ada else (None, None))
        augment_seeds = keras.random.SeedGenerator(t.seed) if t.augment != "none" else None
        pools = ({name: ImagePool(dataset.image_shape, translation.pool_size, seed=t.seed + i)
                  for i, name in enumerate(("discriminator", "discriminator_a"))}
                 if translation is not None and translation.kind == "cyclegan" else {})
    return TrainingState(networks=networks, optimizers=optimizers,
                         learning_rates={name: float(betas[network_role(name)][0])
                                         for name in networks},
                         averages=averages, loss=build_objective(cfg), step=step,
                         first_nonfinite_step=first_nonfinite_step,
                         seed_generator=seed_generator, strategy=strategy, precision=precision,
                         z_dim=cfg.model.z_dim, d_steps=cfg.loss.d_steps_per_g_step, train=t,
                         augment_probability=augment_probability,
                         augment_r_t_sum=augment_r_t_sum, augment_seeds=augment_seeds,
                         translation=translation, pools=pools)


def cpu_has_bf16() -> bool:
    """True when the CPU multiplies bfloat16 natively (AVX512_BF16 or AMX), read from Linux's
    /proc/cpuinfo. Without these, oneDNN emulates bf16 and mixed precision is slower."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return re.search(r"\b(avx512_bf16|amx_bf16)\b", flags) is not None


def resolve_precision(precision: str, device: str) -> str:
    """The Keras dtype policy for train.precision. `auto` picks bf16 only where it was measured
    faster: a CPU with native bf16 (1.5x on the tutorial DCGAN, with a small FID cost early in
    training; README "Speed"). GPUs stay float32 under `auto` until measured there."""
    if precision != "auto":
        return precision
    return "mixed_bfloat16" if device == "CPU" and cpu_has_bf16() else "float32"


@contextlib.contextmanager
def dtype_policy(name: str):
    """Keras' global dtype policy set to `name` inside the block and restored after it."""
    previous = keras.mixed_precision.dtype_policy()
    keras.mixed_precision.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.mixed_precision.set_dtype_policy(previous)


def make_optimizer(learning_rate: float, beta_1: float, beta_2: float, precision: str):
    """Adam; under mixed_float16 wrapped in a dynamic loss scale, which float16's narrow
    exponent range needs (bfloat16 has float32's range and needs none)."""
    optimizer = keras.optimizers.Adam(learning_rate, beta_1=beta_1, beta_2=beta_2)
    if precision == "mixed_float16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer
