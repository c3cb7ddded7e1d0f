"""The compiled training step: D and G updates (alternating or simultaneous), the EMA update,
and `steps_per_call` iterations per compiled call, made from the training state. Speed options
are chosen in TrainConfig; the figures behind their defaults come from `make bench`
(ganctl/bench.py)."""
from __future__ import annotations

import threading

import keras
import tensorflow as tf
from keras import ops

from ganctl.config import warmup_steps
from ganctl.errors import UserError
from ganctl.models.common import is_conditional
from ganctl.models.mode_coverage import couples_examples
from ganctl.replicas import per_replica_loss, replica_rows, replica_slice
from ganctl.training.augment import ADA_INTERVAL, ada_kimg, make_augment, reseed
from ganctl.training.ema import ema_schedule
from ganctl.training.lr_schedule import apply_lr_schedule, lr_scale
from ganctl.training.health import SIGNALS, overfitting_heuristic, step_signals

VALUES = ("d_loss", "g_loss", "gp", "d_real", "d_fake")  # what a step returns, all float32


def value_names(train) -> tuple:
    """The values a step returns: VALUES, plus the health signals under train.health, plus r_t
    and p under train.augment=ada."""
    names = VALUES + (SIGNALS if train.health else ())
    if train.augment == "ada":
        names += ("augment_p",) + (() if "r_t" in names else ("r_t",))
    return names


def make_train_step(state):
    """A tf.function taking `steps_per_call * d_steps_per_g_step * B` real images and labels.

    update_rule="alternating": `d_steps_per_g_step` D-updates, then `g_steps_per_d_step`
    G-updates (1 unless set) of train.g_batch_size fakes (default: the batch), each with fresh
    noise through the updated D (ganctl's default, the usual GAN algorithm).
    update_rule="simultaneous": the TF DCGAN tutorial's step: one G forward, D and G losses from
    the same logits, both gradients taken before either network changes. Less work per step (no
    second G and D forward), but a different algorithm, so it is an explicit choice.
    train.augment=diffaug: DiffAugment's transforms before every D call; ada: each with probability
    p, which the step moves toward train.ada_target from r_t every ADA_INTERVAL steps.
    A class-conditional pair (two-input G and D, e.g. cdcgan) gets the real batch's labels: G
    draws fakes of the same classes, so D compares real and fake class by class.

    `state` (ganctl/core/state.py) holds the networks, optimizers, counters and RNG, and the
    options of the step (`state.train`). The function is cross-replica: each replica updates
    on its rows of the global batch (ganctl/training/distribute.py), then the values are
    averaged and the step counter, EMA and NaN bookkeeping run once.

    All state lives in variables (step counter, RNG, optimizers), so the function has no Python
    side effects and the loop only syncs with the device when it logs.
    """
    t = state.train
    generator, discriminator = state.generator, state.discriminator
    g_optimizer, d_optimizer = state.optimizers["generator"], state.optimizers["discriminator"]
    loss, seed_generator = state.loss, state.seed_generator
    strategy, d_steps = state.strategy, state.d_steps
    # Batch norm or minibatch std would mix real and fake statistics; without them one D call on
    # both halves is equivalent (dropout masks are drawn per element either way) and cheaper.
    joint_d_call = t.joint_d_call and not couples_examples(discriminator)
    conditional = check_conditional_pair(generator, discriminator)
    g_share = t.batch_size // (t.get("g_batch_size") or t.batch_size)

    def fakes(labels, training=True):
        z = replica_rows(lambda shape: keras.random.normal(shape, seed=seed_generator),
                         (ops.shape(labels)[0], state.z_dim))
        return generator([z, labels] if conditional else z, training=training)

    # DiffAugment's transforms (each with probability p under ada), or the identity; their
    # randomness is a seed generator of their own, reseeded each step (compile_step).
    augment = make_augment(t.augment_policy if t.augment != "none" else "none",
                           state.augment_seeds, state.augment_probability)

    # train.health: what the updates compute anyway (gradients, both batches), for step_signals.
    # Per thread: MirroredStrategy traces each replica in a thread of its own, interleaved.
    probes = threading.local()

    def probe() -> dict:
        if not hasattr(probes, "values"):
            probes.values = {}
        return probes.values

    def critic(images, labels):
        # DiffAugment: D sees every image, real or fake, in each loss and penalty, through the
        # same random differentiable transforms; G's gradients flow back through them.
        images = augment(images)
        return discriminator([images, labels] if conditional else images, training=True)

    def discriminate(real_images, fake_images, labels):
        if joint_d_call:
            batch_size = ops.shape(real_images)[0]
            both = ops.concatenate([ops.cast(real_images, fake_images.dtype), fake_images], 0)
            logits = critic(both, ops.concatenate([labels, labels], 0))
            return logits[:batch_size], logits[batch_size:]
        return critic(real_images, labels), critic(fake_images, labels)

    def penalty_of(real_images, fake_images, labels):
        # Penalties see D as a function of images alone, at the batch's labels.
        own, r1 = loss.penalty_parts(lambda images, training=True: critic(images, labels),
                                     real_images, fake_images, seed_generator, state.step)
        probe().update(r1_added=r1)
        return own + r1

    def discriminator_update(real_images, labels):
        fake_images = fakes(labels)  # outside the tape: no gradient into G
        with tf.GradientTape() as tape:
            real_logits, fake_logits = discriminate(real_images, fake_images, labels)
            d_loss = loss.discriminator_loss(real_logits, fake_logits)
            penalty = penalty_of(real_images, fake_images, labels)
            # scale_loss is the identity except under a LossScaleOptimizer (mixed_float16).
            scaled = d_optimizer.scale_loss(per_replica_loss(d_loss + penalty, strategy))
        grads = tape.gradient(scaled, discriminator.trainable_variables)
        d_optimizer.apply(grads, discriminator.trainable_variables)
        probe().update(d_grads=grads, real_images=real_images, fake_images=fake_images)
        return d_loss, penalty, real_logits, fake_logits

    def generator_update(real_images, labels):
        with tf.GradientTape() as tape:
            fake_logits = critic(fakes(labels), labels)
            # A relativistic loss scores the fakes against this D's verdicts on real data.
            real_logits = critic(real_images, labels) if loss.generator_needs_real else None
            g_loss = loss.generator_loss(fake_logits, real_logits)
            scaled = g_optimizer.scale_loss(per_replica_loss(g_loss, strategy))
        grads = tape.gradient(scaled, generator.trainable_variables)
        g_optimizer.apply(grads, generator.trainable_variables)
        probe().update(g_grads=grads)
        return g_loss

    def alternating_update(real_batch, real_labels):
        image_chunks = ops.split(real_batch, d_steps, axis=0) if d_steps > 1 else [real_batch]
        label_chunks = ops.split(real_labels, d_steps, axis=0) if d_steps > 1 else [real_labels]
        for real_images, labels in zip(image_chunks, label_chunks):
            d_loss, penalty, real_logits, fake_logits = discriminator_update(real_images, labels)
        g_images, g_labels = image_chunks[-1], label_chunks[-1]
        if g_share > 1:  # train.g_batch_size: G's updates take the first rows
            rows = ops.shape(g_labels)[0] // g_share
            g_images, g_labels = g_images[:rows], g_labels[:rows]
        for _ in range(loss.g_steps_per_d_step):
            g_loss = generator_update(g_images, g_labels)
        return d_loss, g_loss, penalty, real_logits, fake_logits

    def simultaneous_update(real_images, labels):
        # Both losses come from one forward pass; the persistent tape keeps it for two backwards.
        with tf.GradientTape(persistent=True) as tape:
            fake_images = fakes(labels)
            real_logits, fake_logits = discriminate(real_images, fake_images, labels)
            d_loss = loss.discriminator_loss(real_logits, fake_logits)
            penalty = penalty_of(real_images, fake_images, labels)
            g_loss = loss.generator_loss(fake_logits, real_logits)
            d_scaled = d_optimizer.scale_loss(per_replica_loss(d_loss + penalty, strategy))
            g_scaled = g_optimizer.scale_loss(per_replica_loss(g_loss, strategy))
        d_grads = tape.gradient(d_scaled, discriminator.trainable_variables)
        g_grads = tape.gradient(g_scaled, generator.trainable_variables)
        del tape
        probe().update(d_grads=d_grads, g_grads=g_grads, real_images=real_images,
                       fake_images=fake_images)
        d_optimizer.apply(d_grads, discriminator.trainable_variables)
        g_optimizer.apply(g_grads, generator.trainable_variables)
        return d_loss, g_loss, penalty, real_logits, fake_logits

    update_networks = simultaneous_update if t.update_rule == "simultaneous" else alternating_update

    def replica_update(real_batch, real_labels):
        """Replica context: this replica's rows, the network updates, its local mean values."""
        real_batch, real_labels = (replica_slice(real_batch, d_steps),
                                   replica_slice(real_labels, d_steps))
        d_loss, g_loss, penalty, real_logits, fake_logits = update_networks(real_batch, real_labels)
        values = {
            "d_loss": ops.cast(d_loss, "float32"),
            "g_loss": ops.cast(g_loss, "float32"),
            "gp": ops.cast(penalty, "float32"),
            "d_real": ops.mean(ops.cast(loss.probability(real_logits), "float32")),
            "d_fake": ops.mean(ops.cast(loss.probability(fake_logits), "float32")),
        }
        if lazy_r1:
            values["r1_added"] = ops.cast(probe().pop("r1_added"), "float32")
        else:
            probe().pop("r1_added", None)
        if t.health:
            values.update(step_signals(loss, real_logits, fake_logits, **probe()))
        if t.augment == "ada" and "r_t" not in values:
            values["r_t"] = overfitting_heuristic(loss, real_logits, fake_logits)
        return values

    # loss.r1_every=k adds k x R1 on one step in k and nothing between; "gp" reports R1 as last
    # measured instead (R1 at loss.r1_weight), so a log or TensorBoard never shows it as off.
    lazy_r1 = loss.r1_weight > 0 and loss.r1_every > 1
    with strategy.scope():
        r1_shown = tf.Variable(0.0, trainable=False, name="r1_shown") if lazy_r1 else None

    def report_lazy_r1(values):
        added = values.pop("r1_added")
        # A NaN shown (then rolled back, train.on_nan) is replaced at once, not k steps later.
        measured = (state.step % loss.r1_every == 0) | ~tf.math.is_finite(r1_shown)
        r1_shown.assign(tf.where(measured, added / loss.r1_every, r1_shown))
        values["gp"] = values["gp"] - added + r1_shown
        return values

    return compile_step(state, replica_update, value_names(t),
                        report_lazy_r1 if lazy_r1 else None)


def compile_step(state, replica_update, value_names, reduced_values=None):
    """The tf.function around `replica_update(*batch) -> {name: float32 value}` (replica
    context): runs it on every replica, averages the values, updates the EMA copy, counts the
    step, records the first non-finite loss, and does `steps_per_call` steps per call.
    `reduced_values(values) -> values` (cross-replica, before the step is counted) may turn
    the averaged values into the reported ones.
    Shared by the noise -> image step above and the translation steps (translation_step.py)."""
    t = state.train
    step, strategy, steps_per_call = state.step, state.strategy, t.steps_per_call
    # train.ema's fixed decay with a warm-up, or a horizon in images (training/ema.py).
    decay_of = ema_schedule(t, state.images_per_step)
    warmup = warmup_steps(t.get("lr_warmup_kimg"), state.images_per_step)

    def update_ema():
        decay = decay_of(step)
        for name, average in state.averages.items():
            for ema_weight, weight in zip(average.weights, state.networks[name].weights):
                if weight.trainable:
                    ema_weight.assign(decay * ema_weight + (1.0 - decay) * weight)
                else:  # batch-norm statistics are copied, not averaged
                    ema_weight.assign(weight)

    def adapt_augment_probability(r_t):
        """ADA's rule: every ADA_INTERVAL steps, p moves toward the target by the sign of r_t
        over those steps' real batches, by their images / (ada_kimg * 1000) (so 0 to 1 takes
        ada_kimg thousand images). The sum so far is checkpointed: a resume is exact."""
        p, r_t_sum = state.augment_probability, state.augment_r_t_sum
        r_t_sum.assign_add(r_t)
        last_of_interval = (step + 1) % ADA_INTERVAL == 0  # `step` is not counted yet
        speed = ADA_INTERVAL * state.images_per_step / (ada_kimg(t, state.images_per_step) * 1000.0)
        moved = ops.clip(p + ops.sign(r_t_sum / ADA_INTERVAL - t.ada_target) * speed, 0.0, 1.0)
        p.assign(tf.where(last_of_interval, moved, p))
        r_t_sum.assign(tf.where(last_of_interval, 0.0, r_t_sum))
        return ops.cast(p, "float32")

    def one_step(*batch):
        # Cross-replica context: the rates are set once, before the replicas use them.
        apply_lr_schedule(state.optimizers, state.learning_rates,
                          lr_scale(step, t.steps, t.get("lr_decay_start"), warmup))
        if state.augment_seeds is not None:
            reseed(state.augment_seeds, t.seed, step)
        per_replica = strategy.run(replica_update, args=batch)
        # Equal shares, so the mean of the replicas' means is the global batch's mean.
        values = {name: strategy.reduce(tf.distribute.ReduceOp.MEAN, value, axis=None)
                  for name, value in per_replica.items()}
        if reduced_values is not None:
            values = reduced_values(values)
        if state.averages:
            update_ema()
        if state.augment_probability is not None:
            values["augment_p"] = adapt_augment_probability(values["r_t"])
        step.assign_add(1)
        finite = (tf.math.is_finite(values["d_loss"]) & tf.math.is_finite(values["g_loss"])
                  & tf.math.is_finite(values["gp"]))
        first = state.first_nonfinite_step
        first.assign(tf.where((first < 0) & ~finite, step, first))
        return values

    # autograph=False: nothing in a step needs Python control flow turned into graph ops, and
    # converting every function the step calls made the first call ~4x slower (5.5 s against
    # 1.4 s for a tiny DCGAN), paid at every start and resume. A Python `if` on a tensor now
    # fails loudly at trace time instead of being converted.
    @tf.function(jit_compile=t.jit_compile, reduce_retracing=True, autograph=False)
    def train_step(*batch):
        if steps_per_call == 1:
            return one_step(*batch)
        # K steps in one call: one dispatch (and no host round trip) per K steps. A while loop
        # keeps the graph the size of one step; the values returned are the last step's.
        parts = [ops.reshape(part, (steps_per_call, -1, *part.shape[1:])) for part in batch]

        def next_step(i, _):
            return i + 1, one_step(*[part[i] for part in parts])

        _, values = tf.while_loop(
            lambda i, _: i < steps_per_call, next_step,
            (tf.constant(0), {name: tf.zeros((), "float32") for name in value_names}),
            parallel_iterations=1)
        return values

    return train_step


def check_conditional_pair(generator, discriminator) -> bool:
    """Whether G and D are class-conditional; both or neither must be."""
    conditional = is_conditional(generator)
    if conditional != is_conditional(discriminator):
        which = "generator" if conditional else "discriminator"
        raise UserError(f"only the {which} is class-conditional: model.generator and "
                        "model.discriminator must both take labels (model=cdcgan) or neither.")
    return conditional
