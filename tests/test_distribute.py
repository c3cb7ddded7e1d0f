"""train.strategy: two replicas compute what one device computes; two workers write one run."""
from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys

import numpy as np
import pytest

from tests.helpers import CONF, ganctl

# Every per-replica detail at once: labels (cdcgan), 2 critic chunks per step and WGAN-GP's eps
# (wgan_gp), dropout masks, DiffAugment draws, and generator batch norm (synchronised).
SETUP = ["model=cdcgan", "loss=wgan_gp", "loss.d_steps_per_g_step=2", "dataset.limit=256",
         "model.discriminator.dropout=0.3", "train.augment=diffaug", "model.generator.width=8",
         "model.discriminator.width=8", "train.batch_size=16", "train.steps=8", "train.log_every=1",
         "train.sample_grid=4", "train.progress=false", "train.checkpoint_every=4"]
# The replicas sum float32 gradients in another order, so results agree to rounding: measured at
# most 4.8e-7 apart over 30 steps of this setup (losses of size 0.01-3). The bugs this guards
# against differ by 1e-2 or more (measured on a prototype): a missing 1/N on the loss, replicas
# drawing the same z, eps or dropout mask, per-replica batch norm statistics.
TOLERANCE = 1e-5


def losses(run_dir) -> np.ndarray:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return np.array([[row[k] for k in ("d_loss", "g_loss", "gp")] for row in rows])


def two_cpus(*args, cwd):
    env = {**os.environ, "GANCTL_OFFLINE": "1", "TF_CPP_MIN_LOG_LEVEL": "3",
           "PYTHONPATH": str(CONF.parent)}
    return subprocess.run([sys.executable, "-m", "tests.two_cpus", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


def test_mirrored_on_two_devices_follows_the_one_device_loss_curve(compose_cfg, tmp_path):
    from ganctl.training.loop import train

    # The one-device reference trains in this process (TF is loaded already); the two replicas
    # need a process whose CPU was split before TensorFlow started.
    runs = {strategy: tmp_path / strategy for strategy in ("single", "mirrored")}
    runs["single"].mkdir()
    train(compose_cfg([*SETUP, "train.strategy=single"]), runs["single"])
    result = two_cpus("train", *SETUP, "train.strategy=mirrored",
                      f"hydra.run.dir={runs['mirrored']}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    log = (runs["mirrored"] / "train.log").read_text()
    assert "2 replica(s) (train.strategy=mirrored)" in log
    single, mirrored = losses(runs["single"]), losses(runs["mirrored"])
    assert single.shape == mirrored.shape == (8, 3) and np.abs(np.diff(single[:, 0])).max() > 1e-3
    np.testing.assert_allclose(mirrored, single, rtol=TOLERANCE, atol=TOLERANCE)

    # A checkpoint written by two replicas continues on one device.
    result = ganctl("train", f"resume={runs['mirrored']}", "train.strategy=single",
                    "train.steps=10", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert [row["step"] for row in map(json.loads, (runs["mirrored"] / "metrics.jsonl")
                                       .read_text().splitlines())][-2:] == [9, 10]


def test_a_batch_that_does_not_split_evenly_is_refused(tmp_path):
    result = two_cpus("train", *SETUP, "train.batch_size=15", "train.strategy=mirrored",
                      f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    assert result.returncode == 2
    assert "train.batch_size=15 is the global batch, split evenly over 2 replicas" in result.stderr
    assert "Traceback" not in result.stderr


def free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def test_two_workers_on_loopback_train_and_only_the_chief_writes(tmp_path):
    workers = [f"localhost:{port}" for port in free_ports(2)]
    processes = []
    for index in range(2):
        tf_config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        env = {**os.environ, "GANCTL_OFFLINE": "1", "TF_CPP_MIN_LOG_LEVEL": "3",
               "PYTHONPATH": str(CONF.parent), "TF_CONFIG": json.dumps(tf_config)}
        processes.append(subprocess.Popen(
            [sys.executable, "-m", "ganctl", "train", *SETUP, "train.strategy=auto",
             f"hydra.run.dir={tmp_path / f'worker{index}'}"],
            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    try:
        outputs = [p.communicate(timeout=400) for p in processes]
    finally:
        for p in processes:
            p.kill()
    for p, (_, err) in zip(processes, outputs):
        assert p.returncode == 0, err[-3000:]
    chief, other = tmp_path / "worker0", tmp_path / "worker1"
    assert "2 replica(s) (train.strategy=auto)" in (chief / "train.log").read_text()
    assert sorted(p.name for p in (chief / "checkpoints").glob("*.index")) == ["ckpt-4.index",
                                                                            "ckpt-8.index"]
    assert (chief / "generator.keras").is_file() and len(losses(chief)) == 8
    assert not (other / "checkpoints").exists() and not (other / "metrics.jsonl").exists()
    assert "this worker writes nothing" in (other / "train.log").read_text()


TF_CONFIG_ERRORS = [("{not json", "TF_CONFIG is not valid JSON"),
                    ("", "train.strategy=multi_worker needs TF_CONFIG")]


def test_multi_worker_explains_a_broken_tf_config_through_the_cli(tmp_path):
    tf_config, message = TF_CONFIG_ERRORS[0]
    result = ganctl("train", "train.strategy=multi_worker", "train.steps=2",
                    f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path,
                    env={"TF_CONFIG": tf_config})
    assert result.returncode == 2 and message in result.stderr, result.stderr[-2000:]
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("tf_config,message", TF_CONFIG_ERRORS)
def test_multi_worker_explains_a_missing_or_broken_tf_config(monkeypatch, tf_config, message):
    """Both messages come from make_strategy, before any cluster is set up (the CLI's exit code
    and paragraph for such an error: the test above)."""
    from ganctl.errors import UserError
    from ganctl.training.distribute import make_strategy

    monkeypatch.setenv("TF_CONFIG", tf_config)
    with pytest.raises(UserError, match=re.escape(message)):
        make_strategy("multi_worker")
