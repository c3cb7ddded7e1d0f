"""The `ganctl` command as a user types it: help, and one-paragraph errors for bad input.

Every case runs the real console script in a subprocess, in an empty directory, and checks that
bad input leaves no run folder behind.
"""
from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.helpers import ganctl


def test_help_lists_commands_without_importing_tensorflow(tmp_path):
    code = ("import sys; from ganctl.cli import main; main(['--help']); "
            "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules, 'TF imported'")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    for command in ("train", "sample", "eval"):
        assert re.search(rf"^\s+{command}\s", result.stdout, re.M)


@pytest.mark.parametrize("command", ["train", "sample", "eval"])
def test_subcommand_help_is_hydra_help_without_tensorflow(tmp_path, command):
    result = subprocess.run([sys.executable, "-X", "importtime", "-m", "ganctl", command, "--help"],
                            capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"ganctl {command}" in result.stdout
    imported = {line.split("|")[-1].strip() for line in result.stderr.splitlines()}
    assert not any(m.startswith(("tensorflow", "keras")) for m in imported)
    assert not (tmp_path / "outputs").exists()


def test_train_help_lists_every_config_group_option(tmp_path):
    result = ganctl("train", "--help", cwd=tmp_path)
    from tests.helpers import config_choices

    for group in ("dataset", "model", "loss"):
        line = next(ln for ln in result.stdout.splitlines() if ln.startswith(f"{group}:"))
        assert set(config_choices(group)) <= {c.strip() for c in line.split(":", 1)[1].split(",")}


def test_cfg_job_prints_composed_config(tmp_path):
    result = ganctl("train", "loss=wgan_gp", "--cfg", "job", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "WassersteinGP" in result.stdout and "d_steps_per_g_step: 5" in result.stdout
    assert not (tmp_path / "outputs").exists()


def test_version(tmp_path):
    result = ganctl("--version", cwd=tmp_path)
    assert result.returncode == 0 and re.match(r"ganctl \d+\.\d+", result.stdout)


BAD_INPUT = [
    (["frobnicate"], r"unknown command 'frobnicate'.*train, sample, eval"),
    (["train", "dataset=mnsit"], r"dataset=mnsit.*Did you mean dataset=mnist\?"),
    (["train", "loss=nope"], r"loss=nope.*Accepted:.*hinge"),
    (["train", "train.bach_size=3"], r"train\.bach_size is not a ganctl setting.*Did you mean "
                                      r"train\.batch_size\?"),
    (["train", "+train.bach_size=3"], r"train\.bach_size is not a ganctl setting.*train\.batch_size"),
    (["train", "train.batch_size=abc"], r"train\.batch_size=abc.*takes a whole number"),
    (["train", "train.batch_size=0"], r"train\.batch_size=0 must be positive"),
    (["train", "train.steps=-5"], r"train\.steps=-5 must be positive"),
    (["train", "train.g_lr=0"], r"train\.g_lr=0\.0 must be positive"),
    (["train", "train.on_nan=maybe"], r"train\.on_nan=maybe is not one of: stop, rollback"),
    (["train", "loss=ns,lsgan"], r"add -m to sweep"),
    (["train", "-m", "loss=ns,lsgan", "train.steps=0"], r"train\.steps=0 must be positive"),
    (["train", "resume=does/not/exist"], r"resume=does/not/exist is not a directory"),
    (["train", "resume=."], r"resume=\. is not a ganctl run: it has no config\.yaml"),
    (["train", "hydra.run.dir=afile/run"], r"hydra\.run\.dir=afile/run is inside 'afile'.*a file"),
    (["sample", "run=does/not/exist"], r"run=does/not/exist is not a directory"),
    (["sample", "run=.", "num=0"], r"num=0 must be 1 or more"),
    (["sample", "run=.", "format=jpeg"], r"format=jpeg is not one of: grid, png, npz, gif"),
]


@pytest.mark.parametrize("args,message", BAD_INPUT, ids=[" ".join(a) for a, _ in BAD_INPUT])
def test_bad_input_is_one_paragraph_and_leaves_nothing(tmp_path, args, message):
    (tmp_path / "afile").write_text("not a directory\n")
    before = sorted(p.name for p in tmp_path.iterdir())
    result = ganctl(*args, cwd=tmp_path)
    assert result.returncode != 0
    assert result.stderr.startswith("ganctl: error: "), result.stderr
    assert "Traceback" not in result.stderr
    assert re.search(message, " ".join(result.stderr.split()), re.S), result.stderr
    assert len(result.stderr.strip().split("\n\n")) == 1  # one paragraph
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no run folder created


def test_config_dir_adds_a_users_own_options(tmp_path):
    """--config-dir DIR: DIR/dataset/mine.yaml becomes dataset=mine, validated like the rest."""
    (tmp_path / "mine" / "dataset").mkdir(parents=True)
    (tmp_path / "mine" / "dataset" / "wide_ring.yaml").write_text(
        "_target_: ganctl.datasets.mixtures.Ring\nstd: 0.05\nsize: 1000\n")
    (tmp_path / "mine" / "dataset" / "typo.yaml").write_text(
        "_target_: ganctl.datasets.mixtures.Ring\nstdd: 0.05\n")
    result = ganctl("train", "--config-dir", str(tmp_path / "mine"), "dataset=wide_ring",
                    "model=mlp", "--cfg", "job", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "std: 0.05" in result.stdout
    result = ganctl("train", "--config-dir", str(tmp_path / "mine"), "dataset=typo", cwd=tmp_path)
    assert result.returncode == 2 and "stdd" in result.stderr and "Traceback" not in result.stderr
