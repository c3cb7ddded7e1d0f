"""Shared test helpers: run the real `ganctl` script, find the shipped config choices."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

CONF = Path(__file__).resolve().parent.parent / "conf"
GANCTL = [sys.executable, "-m", "ganctl"]


def config_choices(group: str) -> list[str]:
    """Every option of a config group, discovered from the YAML files (so new ones get tested)."""
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def ganctl(*args: str, cwd, timeout: float = 600, env: dict | None = None):
    """Run `ganctl ARGS` as a user would; offline, quiet TF logging."""
    full_env = {**os.environ, "GANCTL_OFFLINE": "1", "TF_CPP_MIN_LOG_LEVEL": "3",
                "PYTHONPATH": str(CONF.parent), **(env or {})}
    return subprocess.run([*GANCTL, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=full_env)


def linear_critic(weights):
    """D(x) = w . flatten(x) for (4, 4, 1) inputs, as a real Keras model: grad_x D = w for every x."""
    import keras

    inputs = keras.Input(shape=(4, 4, 1))
    dense = keras.layers.Dense(1, use_bias=False)
    model = keras.Model(inputs, dense(keras.layers.Flatten()(inputs)))
    dense.kernel.assign(weights.reshape(-1, 1).astype("float32"))
    return model
