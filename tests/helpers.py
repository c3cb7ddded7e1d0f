"""Shared test helpers: run the real `ganctl` script, find the shipped config choices, compose
configs and build parts from the shipped YAML files the way the CLI does."""
from __future__ import annotations

import gzip
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np

CONF = Path(__file__).resolve().parent.parent / "conf"
GANCTL = [sys.executable, "-m", "ganctl"]
# Tiny networks and batches, quiet output: what every test that trains adds to its overrides.
TINY = ["model.generator.width=8", "model.discriminator.width=8", "train.batch_size=8",
        "train.log_every=1", "train.sample_grid=4", "train.progress=false"]


def config_choices(group: str) -> list[str]:
    """Every option of a config group, discovered from the YAML files (so new ones get tested)."""
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def translation_choices() -> tuple[list[str], list[str]]:
    """(models, datasets) of image-to-image translation, found from the shipped YAMLs: a model
    with a `translation:` node, a dataset whose schema is a two-domain one."""
    from omegaconf import OmegaConf

    from ganctl.config import TranslationDatasetConfig, shipped_option

    models = [m for m in config_choices("model")
              if "translation" in OmegaConf.load(CONF / "model" / f"{m}.yaml")]
    datasets = [d for d in config_choices("dataset") if issubclass(
        OmegaConf.get_type(shipped_option("dataset", d)), TranslationDatasetConfig)]
    return models, datasets


def write_idx(path: Path, array: np.ndarray) -> Path:
    """An IDX file (gzipped when the name ends in .gz), as LeCun's format describes it."""
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I",
                                                                      *array.shape)
    data = header + np.ascontiguousarray(array, np.uint8).tobytes()
    path.write_bytes(gzip.compress(data) if path.name.endswith(".gz") else data)
    return path


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


def compose(command: str, overrides: list[str]):
    """The config `ganctl <command>` builds from these overrides (not yet checked)."""
    from ganctl.config import compose as compose_config

    return compose_config(command, overrides)


def shipped_node(schema: type, yaml_path, *overrides):
    """A shipped group YAML merged into its schema, as composing that option does: a key the
    schema lacks fails here, and `overrides` (dicts) are merged on top."""
    from ganctl.config import load_option

    return load_option(schema, yaml_path, *overrides)


def build_loss(path, **overrides):
    """Build a loss as `ganctl train` does: the YAML merged into its schema, then built."""
    from ganctl import registry
    from ganctl.config import LossConfig

    return registry.build(shipped_node(LossConfig, path, overrides), "loss", schema=LossConfig)


def refusal(compose_cfg, overrides: list[str]) -> str:
    """The UserError that composing `overrides` raises, checked to be one paragraph."""
    import pytest

    from ganctl.errors import UserError

    with pytest.raises(UserError) as caught:
        compose_cfg(overrides)
    problem = str(caught.value)
    assert "\n" not in problem, problem
    return problem
