"""train.health and `ganctl doctor`: real tiny runs built to go wrong, each provoking its warning,
and a healthy one provoking none; doctor's verdicts and exit codes on the same runs."""
from __future__ import annotations

import json
import logging
import re
import shutil
from pathlib import Path

import pytest

from tests.helpers import TINY, compose, ganctl

MNIST = [*TINY, "dataset=mnist", "model=dcgan", "train.batch_size=16", "train.log_every=10",
         "train.sample_every=1000", "train.checkpoint_every=1000"]
RUNS = {
    "healthy": ["train.steps=60"],
    "d_lr_x100": ["train.steps=40", "train.d_lr=2e-2"],        # default d_lr 2e-4
    "few_images": ["train.steps=60", "dataset.limit=32", "train.batch_size=32",
                   "model.discriminator.width=32"],
    "one_image": ["train.steps=30", "train.ema=0"],             # G replaced by a constant image
}


def one_image_generator(model, dataset):
    """A generator that ignores its noise: every fake is the same learned image."""
    import keras
    from keras import ops

    class OneImage(keras.layers.Layer):
        def build(self, input_shape):
            self.image = self.add_weight(shape=dataset.image_shape, initializer="random_normal")

        def call(self, z):
            return ops.tanh(self.image)[None] + 0.0 * ops.reshape(z[:, :1], (-1, 1, 1, 1))

    z = keras.Input((model.z_dim,))
    return keras.Model(z, OneImage()(z))


def train_in_process(run_dir: Path, overrides: list[str], resuming: bool = False,
                     base: list[str] = MNIST) -> list[str]:
    """Train like `ganctl train` (train.log included) and return the log's lines."""
    from ganctl.training.loop import train
    from ganctl.validate import check_train_config

    cfg = compose("train", [*base, *overrides])
    check_train_config(cfg)
    run_dir.mkdir(exist_ok=True)
    handler = logging.FileHandler(run_dir / "train.log")
    handler.setFormatter(logging.Formatter("[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"))
    logger = logging.getLogger("ganctl")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        train(cfg, run_dir, resuming=resuming)
    finally:
        logger.removeHandler(handler)
        handler.close()
    return (run_dir / "train.log").read_text().splitlines()


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    import ganctl.core.state as state

    root = tmp_path_factory.mktemp("health")
    folders = {}
    for name, overrides in RUNS.items():
        folders[name] = root / name
        if name == "one_image":
            real_builder, state.build_generator = state.build_generator, one_image_generator
        try:
            train_in_process(folders[name], overrides)
        finally:
            if name == "one_image":
                state.build_generator = real_builder
    return folders


def events(run_dir: Path) -> list[dict]:
    path = run_dir / "health.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []


def started(run_dir: Path) -> list[str]:
    return [e["warning"] for e in events(run_dir) if e["event"] == "start"]


def test_a_healthy_run_raises_no_warning_and_logs_the_signals(runs):
    assert started(runs["healthy"]) == []
    assert "health: no warnings in 60 steps." in (runs["healthy"] / "train.log").read_text()
    rows = [json.loads(line) for line in (runs["healthy"] / "metrics.jsonl").read_text().splitlines()]
    for key in ("d_acc_real", "d_acc_fake", "d_sure_fake", "r_t", "g_grad_norm", "d_grad_norm",
                "diversity", "health_warnings"):
        assert all(key in row for row in rows), key
    assert 0.2 < rows[-1]["diversity"] < 2 and rows[-1]["g_grad_norm"] > 0


@pytest.mark.parametrize("run,warning,action", [
    ("d_lr_x100", "d_overpowering", "train.d_lr=0.002"),
    ("few_images", "d_overfitting", "train.augment=ada"),
    ("one_image", "collapse", "model.discriminator.minibatch_std=true"),
])
def test_each_broken_run_provokes_its_warning_once_with_the_action(runs, run, warning, action):
    assert started(runs[run]) == [warning]
    event = events(runs[run])[0]
    assert action in event["action"] and event["evidence"]
    log = (runs[run] / "train.log").read_text()
    # Logged once, as a warning naming the evidence and the setting to type.
    assert log.count("health warning at step") == 1
    assert re.search(rf"\]\[WARNING\] - health warning at step {event['step']}: .*Try: .*"
                     rf"{re.escape(action)}", log)
    assert "health: 1 warning(s)" in log and "still on" in log


def test_the_warning_is_in_tensorboard(runs):
    import tensorflow as tf

    texts = []
    for path in (runs["d_lr_x100"] / "tensorboard").glob("events.out.tfevents.*"):
        for record in tf.data.TFRecordDataset(str(path)):
            event = tf.compat.v1.Event.FromString(record.numpy())
            texts += [v.tensor.string_val[0].decode() for v in event.summary.value
                      if v.tag == "health"]
    assert len(texts) == 1 and "D overpowering G" in texts[0]


def test_a_resumed_run_does_not_repeat_a_warning_still_on(runs, tmp_path):
    run = tmp_path / "resumed"
    shutil.copytree(runs["d_lr_x100"], run)
    train_in_process(run, [*RUNS["d_lr_x100"], "train.steps=60"], resuming=True)
    assert started(run) == ["d_overpowering"]


@pytest.mark.parametrize("run,code,verdict", [
    ("healthy", 0, "verdict: healthy: finished"),
    ("d_lr_x100", 1, "verdict: change: lower D's learning rate"),
    ("few_images", 1, "verdict: change: adaptive augmentation: train.augment=ada"),
    ("one_image", 1, "verdict: change: let D see batch statistics"),
])
def test_doctor_gives_each_run_its_verdict_and_exit_code(runs, run, code, verdict, tmp_path):
    result = ganctl("doctor", f"run={runs[run]}", cwd=tmp_path)
    assert result.returncode == code, result.stderr
    assert verdict in result.stdout
    assert "where: finished" in result.stdout and "trends (" in result.stdout
    for event in events(runs[run]):
        assert f"step {event['step']}: {event['title']}" in result.stdout


def test_doctor_on_a_sweep_lists_each_job_and_fails_if_one_needs_attention(runs, tmp_path):
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    (sweep / "multirun.yaml").write_text("hydra: {}\n")
    for i, name in enumerate(("healthy", "one_image")):
        shutil.copytree(runs[name], sweep / f"{i}_{name}")
    result = ganctl("doctor", f"sweep={sweep}", cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert "0_healthy: finished; healthy: finished" in result.stdout
    assert "2 runs, 1 need attention: 1_one_image." in result.stdout


def test_doctor_on_a_folder_that_is_no_run_says_so_in_one_paragraph(tmp_path):
    result = ganctl("doctor", f"run={tmp_path}", cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"run={tmp_path} is not a ganctl run: it has no config.yaml" in " ".join(
        result.stderr.split())


RING = ["dataset=ring", "dataset.size=512", "model=mlp", "model.generator.width=16",
        "model.discriminator.width=16", "train.batch_size=32", "train.progress=false",
        "train.log_every=5", "train.eval_num=256"]


def test_patience_stops_a_run_that_stopped_improving_and_doctor_says_so(tmp_path):
    """G cannot learn (a vanishing g_lr, no EMA), so every evaluation after the first is no
    better: train.patience=2 stops at the third."""
    run = tmp_path / "run"
    # In-process with the CLI's train.log (a TF start-up less); doctor below is the real CLI.
    log = "\n".join(train_in_process(run, ["train.steps=100", "train.g_lr=1e-12", "train.ema=0",
                                            "train.eval_every=5", "train.patience=2"], base=RING))
    assert re.search(r"stopping early at step 15 \(train.patience=2\): fid has not beaten its best "
                     r"[\d.e+-]+ \(step 5, kept in .*best\) in 2 evaluations", log)
    assert "done: step 15" in log and (run / "checkpoints" / "ckpt-15.index").is_file()
    assert started(run) == ["no_progress"]
    doctor = ganctl("doctor", f"run={run}", cwd=tmp_path)
    assert doctor.returncode == 0 and "finished early at step 15 of 100" in doctor.stdout
    assert "verdict: stop: it stopped improving; use the best checkpoint (step 5)" in doctor.stdout
    assert "best checkpoint: step 5" in doctor.stdout


def test_patience_needs_eval_every(tmp_path):
    result = ganctl("train", *RING, "train.patience=3", cwd=tmp_path)
    message = " ".join(result.stderr.split())
    assert result.returncode == 2 and "train.patience=3 counts evaluations" in message
    assert "set train.eval_every too" in message


def test_health_false_turns_the_signals_and_warnings_off(tmp_path):
    run = tmp_path / "run"
    log = train_in_process(run, [*RUNS["d_lr_x100"], "train.steps=30", "train.health=false"])
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert not any("diversity" in row or "health_warnings" in row for row in rows)
    assert not (run / "health.jsonl").exists()
    assert not any("health warning" in line or "health:" in line for line in log)


def test_doctor_imports_no_tensorflow():
    import subprocess
    import sys

    code = "import sys, ganctl.commands.doctor; print('tensorflow' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "False", result.stderr
