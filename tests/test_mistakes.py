"""Mistakes a new user makes, run through the real `ganctl` (issue 14).

Each mistake must end in under the time of a TF import with exit 2 and one paragraph that names
the bad value and an accepted one; it must leave no new folder and change no file of the run it
names (checksums before and after). Every "did you mean" / suggested command is then typed back
in and must pass the same checks that refused the mistake.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import GANCTL, TINY, compose, ganctl

RING = ["dataset=ring", "model=mlp", "model.generator.width=16", "model.discriminator.width=16",
        "train.batch_size=16", "train.progress=false"]


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """A finished 4-step ring run, shared: no mistake below may change any of its files."""
    run_dir = tmp_path_factory.mktemp("mistakes") / "run"
    result = ganctl("train", *RING, "train.steps=4", f"hydra.run.dir={run_dir}",
                    cwd=run_dir.parent)
    assert result.returncode == 0, result.stderr
    return run_dir


def checksums(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


R = "{run}"   # stands for the shared run's folder in the table below
# (arguments, what the message must say: the bad value ... an accepted one, the fix to type or
# None when the message's own "Did you mean X?" is the fix)
MISTAKES = [
    (["trian"], r"'trian'.*Did you mean ganctl train\?", None),
    (["train", "train.bach_size=3"], r"train\.bach_size .*Did you mean train\.batch_size\?", None),
    (["train", "los=ns"], r"los is not.*Did you mean loss\?", None),
    (["train", "loss=hinj"], r"loss=hinj.*Did you mean loss=hinge\?", None),
    (["train", "experiment=rign"], r"experiment=rign.*Did you mean experiment=ring\?", None),
    (["train", "dataset=mnsit"], r"dataset=mnsit.*Did you mean dataset=mnist\?", None),
    (["train", "dataset.pth=x"], r"dataset\.pth .*Did you mean dataset\.path\?", None),
    (["train", "model.generator.widht=8"], r"widht.*Did you mean model\.generator\.width\?", None),
    (["train", "train.precision=float23"], r"float23.*Did you mean train\.precision=float32\?",
     None),
    (["train", "train.update_rule=simultanous"],
     r"simultanous.*Did you mean train\.update_rule=simultaneous\?", None),
    (["train", "train.augment=diffaugment"], r"diffaugment.*Did you mean train\.augment=diffaug\?",
     None),
    (["train", "train.eval_metrics=[fdi]"], r"'fdi' is not a metric\. Did you mean fid\?", None),
    (["train", "hydra/launcher=paralel"], r"paralel.*Did you mean hydra/launcher=parallel\?", None),
    (["train", "train.batch_size=abc"], r"train\.batch_size=abc.*whole number", ["train"]),
    (["train", "train.g_lr=fast"], r"train\.g_lr=fast.*a number, e\.g\. 0\.0002",
     ["train", "train.g_lr=0.0002"]),
    (["train", "seed=é"], r"seed=é cannot be read.*\"seed='é'\"", ["train", "seed=1"]),
    (["train", "hydra.run.dir=/proc/ganctl_ux/r"], r"/proc/ganctl_ux/r.*cannot write.*e\.g\. "
     r"hydra\.run\.dir=", ["train", "hydra.run.dir=NEW/r"]),
    (["train", f"hydra.run.dir={R}"], r"holds a ganctl run with checkpoints up to step 4.*"
     r"resume=.*another folder", ["train", f"resume={R}", "train.steps=8"]),
    (["train", f"resume={R}"], r"already trained 4 steps.*train\.steps=4.*train\.steps=8",
     ["train", f"resume={R}", "train.steps=8"]),
    (["train", f"resume={R}", "loss=hinge"], r"loss=hinge cannot be changed.*train\.steps",
     ["train", f"resume={R}", "train.steps=8"]),
    (["sample", f"run={R}", "formt=png"], r"formt .*Did you mean format\?", None),
    (["sample", f"run={R}", "format=pgn"], r"format=pgn.*Did you mean format=png\?", None),
    (["sample", f"rn={R}"], r"rn is not.*Did you mean run\?", None),
    (["sample", f"run={R}", "num=0"], r"num=0 must be 1 or more", [f"run={R}", "num=1"]),
    (["sample", f"run={R}", "ema=maybe"], r"ema=maybe.*true or false", [f"run={R}", "ema=false"]),
    (["sample", f"run={R}", "checkpoint=latest"], r"checkpoint=latest.*checkpoint=best",
     [f"run={R}", "checkpoint=4"]),
    (["sample", f"run={R}", "labels=three"], r"labels=three.*labels=\[3\]",
     ["sample", f"run={R}", "labels=[3]"]),
    (["sample", f"run={R}", "out=/proc/ganctl_ux.png"], r"out=/proc/ganctl_ux\.png.*cannot "
     r"write.*e\.g\. out=", [f"run={R}", "out=NEW/s.png"]),
    (["sample", f"run={R}", f"out={R}/config.yaml"], r"config\.yaml is a file that exists.*"
     r"overwrite=true", [f"run={R}", "out=NEW/config_2.yaml"]),
    (["eval", f"run={R}", "metrics=[fdi]"], r"'fdi' is not a metric\. Did you mean fid\?", None),
    (["eval", f"run={R}", "metrics=[]"], r"metrics=\[\] chooses no metric.*metrics=\[fid\]",
     [f"run={R}", "metrics=[fid]"]),
    (["eval", f"run={R}", "featurs=pixels"], r"featurs .*Did you mean features\?", None),
    (["eval", f"run={R}", "features=pixel"], r"features=pixel.*Did you mean features=pixels\?",
     None),
    (["eval", f"run={R}", "split=val"], r"split=val is not one of: train, test",
     [f"run={R}", "split=test"]),
    (["eval", f"run={R}", "num=1"], r"num=1 must be at least 2", [f"run={R}", "num=2"]),
    (["eval", f"run={R}", f"sweep={R}"], r"scores one thing.*run=<run dir>", [f"run={R}"]),
    (["eval", "fake=x.npz"], r"fake= and real= go together.*real", None),
    (["eval", f"sweep={R}"], r"sweep=.* is not a multirun directory", None),
]


def _args(args: list[str], run: Path, new: Path) -> list[str]:
    return [a.replace(R, str(run)).replace("NEW", str(new)) for a in args]


@pytest.mark.parametrize("args,message,fix", MISTAKES, ids=[" ".join(a) for a, _, _ in MISTAKES])
def test_a_mistake_is_one_paragraph_exit_2_and_changes_nothing(tmp_path, run, args, message, fix):
    before, cwd_before = checksums(run), sorted(os.listdir(tmp_path))
    result = ganctl(*_args(args, run, tmp_path), cwd=tmp_path, timeout=120)
    text = " ".join(result.stderr.split())
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("ganctl: error: ") and "Traceback" not in result.stderr
    assert len(result.stderr.strip().split("\n\n")) == 1, result.stderr
    assert re.search(message, text), text
    assert sorted(os.listdir(tmp_path)) == cwd_before          # no new folder
    assert checksums(run) == before                           # no file of the run changed
    assert "+" + args[-1] not in text                         # never Hydra's `+key` advice
    # Every suggestion works when typed (class 7): the fix the message names passes the checks.
    typed = _args(fix, run, tmp_path) if fix else typed_suggestion(_args(args, run, tmp_path),
                                                                    text)
    if typed is not None:
        check_typed(typed if typed[0] in ("train", "sample", "eval") else [args[0], *typed])


def test_a_new_run_never_trains_over_another_runs_checkpoints(run):
    """The backstop behind the CLI's check, for folders it cannot see before Hydra makes them (a
    sweep job's, a dated one taken twice in one second): train refuses and the run is unchanged."""
    from ganctl.commands.train import run as train
    from ganctl.errors import UserError

    before = checksums(run)
    with pytest.raises(UserError, match=r"up to step 4.*resume="):
        train(compose("train", RING), run)
    assert checksums(run) == before


def typed_suggestion(args: list[str], text: str) -> list[str] | None:
    """The command line with the message's "Did you mean X?" typed in place of the mistake."""
    import difflib

    from ganctl.cli import COMMANDS

    said = re.search(r"Did you mean (?:ganctl )?(\S+)\?", text)
    if said is None:
        return None
    suggestion = said.group(1)
    if args[0] not in COMMANDS:
        return [suggestion, *args[1:]]
    if "=" in suggestion:   # group=option or key=value: replaces the arg with that key
        key = suggestion.split("=")[0]
        return [suggestion if a.split("=")[0] == key else a for a in args]
    for i, arg in enumerate(args):   # a key: keeps the value typed
        key, _, value = arg.partition("=")
        if value and key != suggestion and difflib.get_close_matches(key, [suggestion], n=1):
            return [*args[:i], f"{suggestion}={value}", *args[i + 1:]]
    for i, arg in enumerate(args):   # a value inside a list, such as metrics=[fdi]
        words = re.findall(r"\w+", arg.partition("=")[2])
        close = [w for w in words if difflib.get_close_matches(w, [suggestion], n=1)]
        if close:
            return [*args[:i], arg.replace(close[0], suggestion), *args[i + 1:]]
    raise AssertionError(f"cannot place the suggestion {suggestion} in {args}")


def check_typed(fixed: list[str]) -> None:
    """Run the checks the CLI runs before any work on `fixed`; AssertionError if they refuse."""
    from ganctl.cli import COMMANDS, _precheck
    from ganctl.config import register_configs
    from ganctl.errors import UserError
    from ganctl.validate import precheck

    command, rest = fixed[0], fixed[1:]
    assert command in COMMANDS, fixed
    register_configs()
    try:
        precheck(command, _precheck(command, rest))
    except UserError as err:
        # dataset.path=x: the key is now right; x is the test's placeholder, named as missing.
        assert "dataset.path=x" in " ".join(fixed), f"typed {fixed}: {err}"


def test_sample_names_files_by_request_and_never_replaces_one(tmp_path, run):
    from ganctl.commands.sample import run as sample

    samples = run.parent / "copy"
    subprocess.run(["cp", "-r", str(run), str(samples)], check=True)
    # The naming is the sample command's own; in-process saves a TF start-up per call. The CLI's
    # exit codes are the refusal below and the replace at the end, through the real `ganctl`.
    for extra in (["num=16"], ["num=32"], ["num=16"]):
        sample(compose("sample", [f"run={samples}", *extra]))
    names = sorted(p.name for p in (samples / "samples").glob("grid_*"))
    assert names == ["grid_step000004_seed0_num16.npz", "grid_step000004_seed0_num16.png",
                     "grid_step000004_seed0_num16_2.npz", "grid_step000004_seed0_num16_2.png",
                     "grid_step000004_seed0_num32.npz", "grid_step000004_seed0_num32.png"], names
    out = tmp_path / "mine.npz"
    out.write_bytes(b"my own file")
    refused = ganctl("sample", f"run={samples}", "format=npz", f"out={out}", cwd=tmp_path)
    assert refused.returncode == 2 and out.read_bytes() == b"my own file"
    replaced = ganctl("sample", f"run={samples}", "format=npz", f"out={out}", "overwrite=true",
                      cwd=tmp_path)
    assert replaced.returncode == 0 and "points" in np.load(out)


def test_eval_keeps_each_requests_results(tmp_path, run):
    job = run.parent / "eval_copy"
    subprocess.run(["cp", "-r", str(run), str(job)], check=True)
    from ganctl.commands.evaluate import run as evaluate

    evaluate(compose("eval", [f"run={job}", "num=200", "metrics=[modes]"]))  # in-process: faster
    result = ganctl("eval", f"run={job}", "num=300", "metrics=[modes]", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    kept = sorted(p.name for p in (job / "eval").glob("metrics_*.json"))
    assert kept == ["metrics_step000004_ema_num200_seed0_train_auto_modes.json",
                    "metrics_step000004_ema_num300_seed0_train_auto_modes.json"]
    assert json.loads((job / "eval" / "metrics.json").read_text())["num_fake"] == 300  # newest


def test_sweep_summary_reevaluates_stale_rows_and_says_step_ema_num(tmp_path, capsys):
    from ganctl.commands.evaluate import run as evaluate

    sweep = tmp_path / "sweep"
    assert ganctl("train", "-m", *RING, "train.steps=4", "seed=0", f"hydra.sweep.dir={sweep}",
                  cwd=tmp_path).returncode == 0
    job = next(p for p in sweep.iterdir() if p.is_dir() and (p / "config.yaml").is_file())
    # The first and last evaluations run in-process (the same command, without a TF start-up
    # each); the stale-row one in the middle goes through the real `ganctl`.
    evaluate(compose("eval", [f"sweep={sweep}", "num=200", "metrics=[modes]"]))
    assert ganctl("train", f"resume={job}", "train.steps=8", cwd=tmp_path).returncode == 0
    assert "done: step 8; 4 steps trained" in (job / "train.log").read_text()
    capsys.readouterr()
    again = ganctl("eval", f"sweep={sweep}", "num=200", "metrics=[modes]", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "re-evaluating" in again.stdout and "step 4, the newest is 8" in again.stdout
    header, _, row = (sweep / "eval_summary.md").read_text().splitlines()[:3]
    cells = dict(zip([c.strip() for c in header.split("|")], [c.strip() for c in row.split("|")]))
    assert (cells["step"], cells["ema"], cells["num"]) == ("8", "True", "200"), cells
    evaluate(compose("eval", [f"sweep={sweep}", "num=200", "metrics=[modes]", "ema=false"]))
    assert "used ema=true" in capsys.readouterr().out
    assert "| False |" in (sweep / "eval_summary.md").read_text()


def test_home_and_non_ascii_paths_train_and_a_truncated_jpeg_is_skipped_quietly(tmp_path):
    """dataset.path=~/... and a folder named in another script work as typed (classes 3, 4, 9):
    the cut-off JPEG is counted and skipped, and no TF C++ or libjpeg line reaches the terminal."""
    from PIL import Image

    folder = tmp_path / "bilder ü"
    folder.mkdir()
    for i in range(8):
        Image.fromarray(np.full((16, 16, 3), 30 * i, np.uint8)).save(folder / f"{i}.png")
    # Cut inside the scan data: the headers Pillow's verify() reads are intact, as after an
    # interrupted copy, and TensorFlow would decode it half grey.
    noise = np.random.default_rng(0).integers(0, 255, (128, 128, 3), dtype=np.uint8)
    Image.fromarray(noise).save(folder / "cut.jpg", quality=95)
    data = (folder / "cut.jpg").read_bytes()
    (folder / "cut.jpg").write_bytes(data[:len(data) * 3 // 4])
    run_dir = tmp_path / "r"
    result = ganctl("train", "dataset=folder", "dataset.path=~/bilder ü", "dataset.resolution=16",
                    "dataset.channels=3", *TINY, "train.steps=2", f"hydra.run.dir={run_dir}",
                    cwd=tmp_path, env={"HOME": str(tmp_path), "TF_CPP_MIN_LOG_LEVEL": "0"})
    assert result.returncode == 0, result.stderr
    log = (run_dir / "train.log").read_text()
    assert "skipped 1 unreadable" in log and "cut.jpg" in log and "truncated JPEG" in log
    assert f"new run in {run_dir}" in log.splitlines()[0]
    assert re.search(r"step 2/2 .* eta \d+m\d\ds", log)
    terminal = result.stdout + result.stderr
    assert not re.search(r"^[IWE]\d{4} |absl|Corrupt JPEG|Premature end|cuInit", terminal, re.M), \
        terminal


def test_a_failure_after_training_started_leaves_no_run_folder(tmp_path):
    """Found at the first in-training evaluation, before any checkpoint: the folder goes too."""
    run_dir = tmp_path / "r"
    result = ganctl("train", *RING, "train.steps=4", "train.eval_every=1",
                    "train.eval_metrics=[cas]", f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert result.returncode == 2 and "cas" in result.stderr and "Traceback" not in result.stderr
    assert not run_dir.exists() and sorted(os.listdir(tmp_path)) == []


def test_running_out_of_memory_is_one_paragraph_naming_the_batch():
    from omegaconf import OmegaConf

    from ganctl.cli import _as_user_error

    cfg = OmegaConf.create({"train": {"batch_size": 4096}})
    err = _as_user_error(MemoryError("Unable to allocate 12.0 GiB for an array"), cfg)
    assert "12.0 GiB" in str(err) and "train.batch_size=4096" in str(err)
    assert "train.batch_size=2048" in str(err) and err.exit_code == 2
    denied = _as_user_error(PermissionError(13, "Permission denied", "/data/x.png"), cfg)
    assert "/data/x.png" in str(denied) and "Permission denied" in str(denied)


def test_ctrl_c_exits_at_once_after_its_message(tmp_path):
    process = subprocess.Popen([*GANCTL, "train", *RING, "train.steps=100000", "train.log_every=5",
                                f"hydra.run.dir={tmp_path / 'r'}"], cwd=tmp_path, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               env={**os.environ, "GANCTL_OFFLINE": "1"})
    said = None
    for line in process.stdout:
        if "step 10/" in line:
            process.send_signal(signal.SIGINT)
        if "stopped by SIGINT" in line:
            said = time.perf_counter()
    process.wait(timeout=60)
    assert said is not None and process.returncode == 130
    assert time.perf_counter() - said < 1.5


@pytest.mark.parametrize("command,shown", [
    ("sample", ["grid, png, npz, gif, dataset", "overwrite", "per_class"]),
    ("eval", ["fid, kid, precision_recall", "auto, classifier, inception, pixels", "split"]),
    ("train", ["dataset: ", "loss: hinge", "train.precision", "mixed_bfloat16"]),
])
def test_each_command_has_its_own_help_with_the_accepted_values(tmp_path, command, shown):
    result = ganctl(command, "--help", cwd=tmp_path)
    assert result.returncode == 0 and result.stdout.startswith(f"ganctl {command}:")
    for text in shown:
        assert text in result.stdout, text
    if command != "train":
        assert "loss: " not in result.stdout and "dataset=" not in result.stdout.split("\n")[2]


def test_no_downloading_line_when_the_host_cannot_be_reached(monkeypatch, tmp_path, capsys):
    from ganctl.datasets.base import download

    monkeypatch.delenv("GANCTL_OFFLINE", raising=False)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    path, why = download("nothing.gz", "http://127.0.0.1:9/nothing.gz")   # port 9: refused
    assert path is None and "127.0.0.1 is unreachable" in why
    assert "Downloading" not in capsys.readouterr().out
