"""`make bench` (python -m ganctl.bench): speed and memory figures, one JSON line per figure.

Headline: images/s of ganctl's training step for the TensorFlow DCGAN tutorial setup
(`experiment=tutorial_dcgan`: batch 256, 28x28, Fashion-MNIST when installed, else MNIST) against
the tutorial's own train_step, written out below. Each variant runs in its own worker process
(so each has its own peak memory and its own thread pools); the parent asks the workers in turn
for a few steps, alternating the order every round, so slow phases of a shared machine hit all
variants alike. Ratios are taken within a round and reported as min/median/max over rounds.

`cpu_ratio` compares process CPU time instead of wall time: on a machine shared with other jobs
it moves much less than the wall-clock ratio and is the better guide to the work each variant
does; `ratio` is what a user waits for. Ratios, never asserts (nanoGPT's bench.py idea).
`health_cost_paired` times the health signals' cost finer: both steps in one process, called in
turn on the same batch, plus their FLOPs counted from the graphs.

    python -m ganctl.bench                  # README's variants (~4 min on 2 cores) + health pair (~2)
    python -m ganctl.bench --quick          # reference, ganctl preset, bf16, health off; ~2 min
    python -m ganctl.bench --variants all   # adds mixed_float16 (a GPU option; slow on CPUs)
    python -m ganctl.bench --pair "dataset=grid" "loss.r1_every=4" "loss.r1_weight=0" --pairs 800
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BATCH = 256
NOISE_DIM = 100
PRESET = ["experiment=tutorial_dcgan"]
DATASETS = {"mnist": "ganctl.datasets.mnist.MNIST",
            "fashion_mnist": "ganctl.datasets.fashion_mnist.FashionMNIST"}

# name -> worker spec. "reference" is the tutorial's loop; the others are ganctl's step built
# exactly as `ganctl train` builds it, from the preset plus these overrides.
VARIANTS = {
    "reference": {"kind": "reference"},
    "ganctl": {"kind": "ganctl", "overrides": []},  # the preset with ganctl's defaults
    "ganctl health=false": {"kind": "ganctl", "overrides": ["train.health=false"]},
    "ganctl bf16": {"kind": "ganctl", "overrides": ["train.precision=mixed_bfloat16"]},
    "ganctl alternating": {"kind": "ganctl", "overrides": ["train.update_rule=alternating"]},
    "ganctl bf16 alternating": {"kind": "ganctl", "overrides": [
        "train.precision=mixed_bfloat16", "train.update_rule=alternating"]},
    "ganctl joint_d_call": {"kind": "ganctl", "overrides": ["train.joint_d_call=true"]},
    "ganctl bf16 steps_per_call=5": {"kind": "ganctl", "overrides": [
        "train.precision=mixed_bfloat16", "train.steps_per_call=5"]},
    "ganctl jit_compile": {"kind": "ganctl", "overrides": ["train.jit_compile=true"]},
    "ganctl mixed_float16": {"kind": "ganctl", "overrides": ["train.precision=mixed_float16"]},
    "reference keras mixed_bfloat16": {"kind": "reference", "policy": "mixed_bfloat16"},
}
QUICK = ["reference", "ganctl", "ganctl bf16", "ganctl health=false"]
# mixed_float16 is for GPUs: on a CPU it runs at about 0.14x and would dominate the bench time.
DEFAULT = [name for name in VARIANTS if name != "ganctl mixed_float16"]


# --- The reference: the TensorFlow DCGAN tutorial, as published (Keras 3 spellings) -------------

def reference_step(policy: str = "float32"):
    """tensorflow.org/tutorials/generative/dcgan: its models, losses, optimizers and train_step."""
    import keras
    import tensorflow as tf
    from keras import layers

    keras.mixed_precision.set_dtype_policy(policy)

    def make_generator_model():
        return keras.Sequential([
            keras.Input((NOISE_DIM,)),
            layers.Dense(7 * 7 * 256, use_bias=False),
            layers.BatchNormalization(),
            layers.LeakyReLU(),
            layers.Reshape((7, 7, 256)),
            layers.Conv2DTranspose(128, (5, 5), strides=(1, 1), padding="same", use_bias=False),
            layers.BatchNormalization(),
            layers.LeakyReLU(),
            layers.Conv2DTranspose(64, (5, 5), strides=(2, 2), padding="same", use_bias=False),
            layers.BatchNormalization(),
            layers.LeakyReLU(),
            layers.Conv2DTranspose(1, (5, 5), strides=(2, 2), padding="same", use_bias=False,
                                   activation="tanh"),
        ])

    def make_discriminator_model():
        return keras.Sequential([
            keras.Input((28, 28, 1)),
            layers.Conv2D(64, (5, 5), strides=(2, 2), padding="same"),
            layers.LeakyReLU(),
            layers.Dropout(0.3),
            layers.Conv2D(128, (5, 5), strides=(2, 2), padding="same"),
            layers.LeakyReLU(),
            layers.Dropout(0.3),
            layers.Flatten(),
            layers.Dense(1),
        ])

    generator = make_generator_model()
    discriminator = make_discriminator_model()
    keras.mixed_precision.set_dtype_policy("float32")
    cross_entropy = keras.losses.BinaryCrossentropy(from_logits=True)

    def discriminator_loss(real_output, fake_output):
        real_loss = cross_entropy(tf.ones_like(real_output), real_output)
        fake_loss = cross_entropy(tf.zeros_like(fake_output), fake_output)
        return real_loss + fake_loss

    def generator_loss(fake_output):
        return cross_entropy(tf.ones_like(fake_output), fake_output)

    generator_optimizer = keras.optimizers.Adam(1e-4)
    discriminator_optimizer = keras.optimizers.Adam(1e-4)

    @tf.function
    def train_step(images):
        noise = tf.random.normal([BATCH, NOISE_DIM])
        with tf.GradientTape() as gen_tape, tf.GradientTape() as disc_tape:
            generated_images = generator(noise, training=True)
            real_output = discriminator(images, training=True)
            fake_output = discriminator(generated_images, training=True)
            gen_loss = generator_loss(fake_output)
            disc_loss = discriminator_loss(real_output, fake_output)
        gradients_of_generator = gen_tape.gradient(gen_loss, generator.trainable_variables)
        gradients_of_discriminator = disc_tape.gradient(disc_loss,
                                                        discriminator.trainable_variables)
        generator_optimizer.apply_gradients(zip(gradients_of_generator,
                                                generator.trainable_variables))
        discriminator_optimizer.apply_gradients(zip(gradients_of_discriminator,
                                                    discriminator.trainable_variables))
        return gen_loss

    return train_step


# --- ganctl's step, built the way training/loop.py builds it ------------------------------------

def ganctl_step(dataset_name: str | None, overrides: list[str], preset: list[str] = PRESET):
    """(step function, images per call, the resolved precision, the config) for the preset +
    overrides, built by the same function as the training loop's."""
    import keras

    from ganctl.config import compose
    from ganctl.core.components import build_dataset
    from ganctl.core.state import build_training_state
    from ganctl.training.steps import make_train_step
    from ganctl.validate import check_train_config

    dataset = [f"dataset={dataset_name}"] if dataset_name else []
    cfg = compose("train", [*preset, *dataset, *overrides])
    check_train_config(cfg)
    keras.utils.set_random_seed(cfg.train.seed)
    state = build_training_state(cfg, build_dataset(cfg.dataset))
    return (make_train_step(state), state.images_per_step * cfg.train.steps_per_call,
            state.precision, cfg)


# --- Worker: one variant in its own process ------------------------------------------------------

def worker(spec: dict) -> None:
    """Build the variant, warm it up, then time `run N` requests from stdin until `quit`."""
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import tensorflow as tf
    from omegaconf import OmegaConf

    from ganctl.core.components import build_dataset

    if spec["kind"] == "pair":
        return pair_worker(spec)
    if spec["kind"] == "reference":
        precision = spec.get("policy", "float32")
        reference, images_per_call = reference_step(precision), BATCH

        def step(images, labels):  # the tutorial's step takes no labels
            return reference(images)
    else:
        # ganctl's step takes (images, labels), as the training loop passes them.
        step, images_per_call, precision, _ = ganctl_step(
            spec["dataset"], spec.get("overrides", []), spec.get("preset", PRESET))
    # Both kinds read the same shuffled batches from ganctl's tf.data pipeline (seed 0).
    dataset = build_dataset(OmegaConf.create({"_target_": DATASETS[spec["dataset"]]}))
    batches = iter(dataset.tf_dataset(images_per_call, seed=0))
    for _ in range(3):  # trace, compile and let tf.data fill its buffers
        result = step(*next(batches))
    _ = tf.nest.flatten(result)[0].numpy()
    _reply({"ready": True, "precision": precision, "source": dataset.source,
            "images_per_call": images_per_call})
    for line in sys.stdin:
        command = line.split()
        if command[0] == "run":
            calls = int(command[1])
            wall, cpu = time.perf_counter(), time.process_time()
            for _ in range(calls):
                result = step(*next(batches))
            _ = tf.nest.flatten(result)[0].numpy()  # wait for the device
            _reply({"wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu,
                    "images": calls * images_per_call})
        else:
            memory = {"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
            if tf.config.list_physical_devices("GPU"):
                memory["peak_gpu_mb"] = tf.config.experimental.get_memory_info("GPU:0")[
                    "peak"] / 2**20
            _reply(memory)
            return


def pair_worker(spec: dict) -> None:
    """Two steps built from the same overrides plus `a` or `b`, in one process, called in turn
    on the same batches (order swapped every pair); replies each pair's time ratios a / b."""
    import tensorflow as tf

    from ganctl.core.components import build_dataset

    built = {side: ganctl_step(None, [*spec["overrides"], *spec[side]], preset=[])
             for side in ("a", "b")}
    steps = {side: step for side, (step, _, _, _) in built.items()}
    images_per_call, cfg = built["a"][1], built["a"][3]
    batches = iter(build_dataset(cfg.dataset).tf_dataset(images_per_call, seed=0))

    def seconds(step, batch) -> tuple[float, float]:
        wall, cpu = time.perf_counter(), time.process_time()
        _ = tf.nest.flatten(step(*batch))[0].numpy()  # wait for the device
        return time.perf_counter() - wall, time.process_time() - cpu

    flops = {side: graph_flops(step, next(batches)) for side, step in steps.items()}
    for _ in range(3):
        for step in steps.values():
            seconds(step, next(batches))
    wall_ratios, cpu_ratios, totals = [], [], {"a": 0.0, "b": 0.0}
    for pair in range(spec["pairs"]):
        batch = next(batches)
        times = {side: seconds(steps[side], batch) for side in ("ab" if pair % 2 == 0 else "ba")}
        wall_ratios.append(times["a"][0] / times["b"][0])
        cpu_ratios.append(times["a"][1] / times["b"][1])
        for side in totals:
            totals[side] += times[side][1]
    _reply({"wall": wall_ratios, "cpu": cpu_ratios, "flops": flops,
            "cpu_total_ratio": totals["a"] / totals["b"]})


def graph_flops(step, batch) -> float:
    """Floating-point operations in one call of a compiled step, counted from its graph by
    TensorFlow's profiler: a figure no other job on the machine can disturb. Ops inside a
    tf.cond branch (loss.r1_every > 1's R1) are not in the graph it walks, so not counted."""
    import tensorflow as tf

    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    graph = step.get_concrete_function(*batch).graph
    return float(tf.compat.v1.profiler.profile(graph=graph, options=options).total_float_ops)


def _reply(message: dict) -> None:
    print(json.dumps(message), flush=True)


class Worker:
    def __init__(self, name: str, spec: dict, images_per_round: int):
        self.name, self.spec = name, spec
        self.process = subprocess.Popen(
            [sys.executable, "-m", "ganctl.bench", "--worker", json.dumps(spec)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "GANCTL_OFFLINE": "1"})
        self.images_per_round = images_per_round
        self.ready: dict = {}
        self.ips: list[float] = []
        self.cps: list[float] = []

    def ask(self, command: str) -> dict:
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        return self.read()

    def read(self) -> dict:
        line = self.process.stdout.readline()
        if not line:
            error = self.process.stderr.read()[-3000:]
            raise RuntimeError(f"bench worker {self.name!r} died:\n{error}")
        return json.loads(line)

    def run_round(self) -> None:
        per_call = self.ready["images_per_call"]
        timing = self.ask(f"run {max(1, self.images_per_round // per_call)}")
        self.ips.append(timing["images"] / timing["wall"])
        self.cps.append(timing["images"] / timing["cpu"])


# --- Figures ----------------------------------------------------------------------------------

def emit(figure: str, **values) -> None:
    print(json.dumps({"figure": figure, **values}), flush=True)


def spread(values: list[float], digits: int = 2) -> dict:
    return {"min": round(min(values), digits), "median": round(statistics.median(values), digits),
            "max": round(max(values), digits)}


def pick_dataset() -> str:
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    from ganctl.datasets.fashion_mnist import DEBIAN_DIR

    return "fashion_mnist" if DEBIAN_DIR.is_dir() else "mnist"


def bench_steps(names: list[str], rounds: int, steps_per_round: int, dataset: str) -> None:
    workers = [Worker(n, {**VARIANTS[n], "dataset": dataset}, steps_per_round * BATCH)
               for n in names]  # all start at once; timing begins only once all are ready
    try:
        for w in workers:
            w.ready = w.read()
        for r in range(rounds):
            for w in (workers if r % 2 == 0 else workers[::-1]):
                w.run_round()
        reference = workers[0]
        for w in workers:
            memory = w.ask("quit")
            emit("train_step", variant=w.name, overrides=w.spec.get("overrides", []),
                 precision=w.ready["precision"], images_per_s=spread(w.ips, 0),
                 ratio=spread([a / b for a, b in zip(w.ips, reference.ips)]),
                 cpu_ratio=spread([a / b for a, b in zip(w.cps, reference.cps)]),
                 **{k: round(v) for k, v in memory.items()}, rounds=rounds,
                 batch=BATCH, data=w.ready["source"])
    finally:
        for w in workers:
            w.process.kill()
    ref = workers[0]
    by_name = {w.name: w for w in workers}
    if {"ganctl", "ganctl health=false"} <= by_name.keys():
        on, off = by_name["ganctl"], by_name["ganctl health=false"]
        emit("health_cost", what="images/s with train.health=true (the default: the health "
             "signals in every step) over train.health=false, same data, alternating A/B",
             ratio=spread([a / b for a, b in zip(on.ips, off.ips)], 3),
             cpu_ratio=spread([a / b for a, b in zip(on.cps, off.cps)], 3), target=0.97)
    fastest = max(workers[1:], key=lambda w: statistics.median(w.cps))
    for label, w in (("ganctl_defaults", workers[1]), ("ganctl_fastest", fastest)):
        emit("headline", what=f"{label}: images/s of ganctl's step (`train experiment="
             "tutorial_dcgan`) vs the TF DCGAN tutorial's train_step, same data, alternating A/B",
             variant=w.name, overrides=w.spec.get("overrides", []),
             ganctl_images_per_s=round(statistics.median(w.ips)),
             reference_images_per_s=round(statistics.median(ref.ips)),
             ratio=spread([a / b for a, b in zip(w.ips, ref.ips)]),
             cpu_ratio=spread([a / b for a, b in zip(w.cps, ref.cps)]), target=2.0)


def bench_pair(overrides: list[str], a: list[str], b: list[str], pairs: int) -> dict:
    """Step time (wall and CPU) and FLOPs of overrides + a over overrides + b, pair by pair in
    one process: far less exposed to a shared machine than the per-process rounds above."""
    worker = Worker("pair", {"kind": "pair", "overrides": overrides, "a": a, "b": b,
                             "pairs": pairs}, 0)
    try:
        measured = worker.read()
    finally:
        worker.process.kill()
    # The medians show a typical step; the total is the average cost of a side whose steps
    # differ (loss.r1_every: R1 on one step in k, which a median never sees).
    return {"pairs": pairs, "time_ratio": spread(measured["wall"], 3),
            "cpu_time_ratio": spread(measured["cpu"], 3),
            "cpu_time_ratio_of_totals": round(measured["cpu_total_ratio"], 3),
            "gflops_per_step": {k: round(v / 1e9, 3) for k, v in measured["flops"].items()},
            "flop_ratio": round(measured["flops"]["a"] / measured["flops"]["b"], 4)}


def bench_health(dataset: str, pairs: int) -> None:
    emit("health_cost_paired", what="step time with train.health=true (the default) over "
         "train.health=false, the preset's step, both in one process, called in turn on the same "
         "batch", **bench_pair([*PRESET, f"dataset={dataset}"], ["train.health=true"],
                               ["train.health=false"], pairs), target=1.03)


def ganctl_command(*args: str, cwd: Path) -> float:
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "ganctl", *args], cwd=cwd, capture_output=True,
                            text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3",
                                            "GANCTL_OFFLINE": "1"})
    if result.returncode != 0:
        raise RuntimeError(f"ganctl {' '.join(args)} failed:\n{result.stderr[-3000:]}")
    return time.perf_counter() - started


def bench_sample(dataset: str, num: int = 10000) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        ganctl_command("train", *PRESET, f"dataset={dataset}", "train.steps=2",
                       "train.batch_size=32", "train.sample_grid=4", "train.progress=false",
                       f"hydra.run.dir={run}", cwd=Path(tmp))
        seconds = ganctl_command("sample", f"run={run}", f"num={num}", "format=npz",
                                 f"out={Path(tmp) / 'samples.npz'}", cwd=Path(tmp))
    emit("sample_seconds", command=f"ganctl sample run=<run> num={num} format=npz",
         seconds=round(seconds, 2), model="tutorial_dcgan", note="wall time of the whole command, "
         "TensorFlow import and checkpoint restore included")


def bench_eval(num: int = 10000) -> None:
    """`ganctl eval` of 10,000 28x28 samples end to end on the default metrics.

    Timed twice: the first call also trains (or loads) the cached MNIST classifier.
    """
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        ganctl_command("train", "dataset=mnist", "train.steps=2", "train.batch_size=32",
                       "model.generator.width=16", "model.discriminator.width=16",
                       "train.sample_grid=4", "train.progress=false", f"hydra.run.dir={run}",
                       cwd=Path(tmp))
        first = ganctl_command("eval", f"run={run}", f"num={num}", cwd=Path(tmp))
        warm = ganctl_command("eval", f"run={run}", f"num={num}", cwd=Path(tmp))
    emit("eval_seconds", command=f"ganctl eval run=<run> num={num}", seconds=round(warm, 2),
         first_call_seconds=round(first, 2), note="fid, kid, precision/recall, density/coverage, "
         "IS and modes with the cached classifier; TensorFlow import included")


def bench_help(runs: int = 5) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        times = [ganctl_command("--help", cwd=Path(tmp)) for _ in range(runs)]
    emit("help_seconds", command="ganctl --help", runs=runs, seconds=spread(times, 3))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m ganctl.bench", description=__doc__.split(
        "\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help=f"only {', '.join(QUICK)}; fewer rounds")
    parser.add_argument("--variants", help="comma-separated names, or all: " + ", ".join(VARIANTS))
    parser.add_argument("--rounds", type=int, help="A/B rounds (default 8, quick 5)")
    parser.add_argument("--steps", type=int, default=2, help="steps per variant per round")
    parser.add_argument("--skip", default="",
                        help="comma-separated: steps, health, sample, eval, help")
    parser.add_argument("--pair", nargs=3, metavar=("OVERRIDES", "A", "B"),
                        help="only this: the step of `ganctl train OVERRIDES A` against OVERRIDES "
                        "B (space-separated overrides each), paired in one process")
    parser.add_argument("--pairs", type=int, default=40, help="step pairs timed (default 40)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker(json.loads(args.worker))
    if args.pair:
        overrides, a, b = (part.split() for part in args.pair)
        return emit("pair", overrides=overrides, a=a, b=b, what="a's step over b's",
                    **bench_pair(overrides, a, b, args.pairs))
    names = (list(VARIANTS) if args.variants == "all" else args.variants.split(",")
             if args.variants else QUICK if args.quick else DEFAULT)
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        parser.error(f"unknown variant(s) {unknown}; choose from {list(VARIANTS)}")
    if names[0] != "reference":
        names = ["reference", *[n for n in names if n != "reference"]]
    skip = set(filter(None, args.skip.split(",")))
    dataset = pick_dataset()
    emit("setup", python=sys.version.split()[0], cpus=os.cpu_count(), dataset=dataset,
         load_average=[round(x, 2) for x in os.getloadavg()], cpu_bf16=_cpu_bf16())
    if "help" not in skip:
        bench_help()
    if "steps" not in skip:
        bench_steps(names, args.rounds or (5 if args.quick else 8), args.steps, dataset)
    if "health" not in skip:
        bench_health(dataset, args.pairs)
    if "sample" not in skip:
        bench_sample(dataset)
    if "eval" not in skip:
        bench_eval()


def _cpu_bf16() -> bool:
    from ganctl.core.state import cpu_has_bf16

    return cpu_has_bf16()


if __name__ == "__main__":
    main()
