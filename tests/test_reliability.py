"""Reliability (issue 4): kills, exact resume, signals, full disks, damaged checkpoints, NaNs,
bad input and safety, each through the real `ganctl` in a subprocess on real files.

Nothing is mocked: processes are really killed, the disk is really full (RLIMIT_FSIZE in the
child), files are really damaged. Independent runs start side by side, because each spends
seconds importing TensorFlow. The full kill test runs outside pytest and prints its figures:

    python -m tests.test_reliability --kills 24
"""
from __future__ import annotations

import argparse
import ast
import json
import os
import random
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from tests.conftest import write_mnist_like
from tests.helpers import CONF, GANCTL

ROOT = CONF.parent
TINY = ["dataset=ring", "model=mlp", "model.generator.width=8", "model.discriminator.width=8",
        "dataset.size=256", "train.batch_size=16", "train.progress=false"]
RESUMED = re.compile(r"resumed (\S+) at step (\d+)")


# --- Running ganctl ----------------------------------------------------------------------------

def start(*args: str, cwd, log: Path | None = None, **popen) -> subprocess.Popen:
    """`ganctl ARGS` as a user runs it (offline, TF quiet); output to `log`, else captured."""
    env = {**os.environ, "GANCTL_OFFLINE": "1", "TF_CPP_MIN_LOG_LEVEL": "3",
           "PYTHONPATH": str(ROOT)}
    if log is None:
        return subprocess.Popen([*GANCTL, *args], cwd=cwd, env=env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, **popen)
    with open(log, "w") as out:  # the child writes through its own copy
        return subprocess.Popen([*GANCTL, *args], cwd=cwd, env=env, text=True, stdout=out,
                                stderr=subprocess.STDOUT, **popen)


def finish(process: subprocess.Popen, timeout: float = 300) -> subprocess.CompletedProcess:
    out, err = process.communicate(timeout=timeout)
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


def side_by_side(*commands, cwd) -> list[subprocess.CompletedProcess]:
    """Run several ganctl commands (argument lists, or processes already started) at once."""
    processes = [c if isinstance(c, subprocess.Popen) else start(*c, cwd=cwd) for c in commands]
    return [finish(p) for p in processes]


def error_of(result: subprocess.CompletedProcess) -> str:
    """The `ganctl: error:` paragraph on one line; TF's own start-up lines may come before it."""
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    at = result.stderr.find("ganctl: error: ")
    assert at >= 0, result.stdout[-2000:] + result.stderr[-2000:]
    paragraph = result.stderr[at:].strip()
    assert "\n\n" not in paragraph, paragraph  # one paragraph
    return " ".join(paragraph.split())


def output(result) -> str:
    return " ".join((result.stdout + result.stderr).split())


def resumed_at(text: str) -> int:
    match = RESUMED.search(text)
    assert match, text[-3000:]
    return int(match[2])


def tiny_train(run: Path, *extra: str) -> list[str]:
    return ["train", *TINY, *extra, f"hydra.run.dir={run}"]


# --- Looking at a run folder --------------------------------------------------------------------

def complete_steps(run: Path) -> list[int]:
    folder = run / "checkpoints"
    names = os.listdir(folder) if folder.is_dir() else []
    return sorted(int(m[1]) for n in names if (m := re.fullmatch(r"ckpt-(\d+)\.index", n))
                  and any(o.startswith(f"ckpt-{m[1]}.data-") for o in names))


def leftovers(run: Path) -> list[str]:
    """Unfinished saves: `_temp` names, and checkpoint files whose partner file is missing."""
    folder = run / "checkpoints"
    names = [p.name for p in folder.iterdir()] if folder.is_dir() else []
    steps = {n.split(".")[0] for n in names if re.match(r"ckpt-\d+\.", n)}
    half = [n for n in names if n.split(".")[0] in steps - {f"ckpt-{s}" for s in
                                                            complete_steps(run)}]
    return sorted([n for n in names if "_temp" in n] + half)


def tensors(prefix: Path) -> dict[str, np.ndarray]:
    """Every tensor of a checkpoint, read the way TF restores it (each one's CRC is checked)."""
    import tensorflow as tf

    reader = tf.train.load_checkpoint(str(prefix))
    return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()}


def all_finite(run: Path) -> bool:
    return all(np.isfinite(v).all() for s in complete_steps(run)
               for v in tensors(run / "checkpoints" / f"ckpt-{s}").values()
               if np.issubdtype(np.asarray(v).dtype, np.number))


def snapshot(folder: Path) -> tuple[dict, str]:
    """What a refused attempt must leave as it was: every file's size and mtime, except for
    train.log, Hydra's log of every attempt on the run, which may only grow."""
    files = {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
             for p in sorted(folder.rglob("*")) if p.name != "train.log"}
    log = folder / "train.log"
    return files, log.read_text() if log.is_file() else ""


def unchanged(folder: Path, before: tuple[dict, str]) -> bool:
    files, log = snapshot(folder)
    return files == before[0] and log.startswith(before[1])


def metrics_steps(run: Path) -> list[int]:
    rows = []
    if not (run / "metrics.jsonl").is_file():
        return rows
    for line in (run / "metrics.jsonl").read_text().splitlines():
        try:
            rows.append(json.loads(line)["step"])
        except (ValueError, KeyError):
            pass  # a line cut short by a kill
    return rows


def wait_for(condition, process: subprocess.Popen, what: str, timeout: float = 120):
    deadline = time.monotonic() + timeout
    while not (found := condition()):
        assert process.poll() is None, f"ganctl ended (rc {process.returncode}) before {what}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.002)
    return found


# --- 1. SIGKILL at random moments ---------------------------------------------------------------

def kill_test(workdir: Path, kills: int, seed: int = 0, say=lambda message: None) -> dict:
    """SIGKILL a real `ganctl train` `kills` times, resume after each; return the figures.

    Even-numbered kills aim at saves: a checkpoint every step, and the kill a few random
    milliseconds after an unfinished save appears. Odd ones land at a random moment with a
    checkpoint every 7 steps. After each kill the folder is inspected: every complete checkpoint
    must read back whole, and the next resume must load the newest one and remove what the kill
    left half-written. The last resume runs to the end and must leave exactly `keep` checkpoints.
    """
    rng = random.Random(seed)
    run, keep = workdir / "run", 3
    figures = {"kills": 0, "aimed_at_saves": 0, "left_half_written_files": 0, "resumes": 0,
               "max_steps_lost": 0, "leftover_files_removed": 0, "events": []}
    expected = reached = 0
    left: list[str] = []
    started = time.monotonic()
    for i in range(kills + 1):
        last, every = i == kills, 1 if i % 2 == 0 else 7
        steps = reached + 15 if last else 10**6
        common = [f"train.checkpoint_every={every}", "train.log_every=1",
                  f"train.keep_checkpoints={keep}", f"train.steps={steps}"]
        args = (tiny_train(run, *common) if i == 0 else ["train", f"resume={run}", *common])
        log = workdir / f"process{i:02d}.log"
        rows_before = len(metrics_steps(run))
        process = start(*args, cwd=workdir, log=log)
        if i == 0:
            wait_for(lambda: complete_steps(run), process, "the first checkpoint")
        else:
            text = wait_for(lambda log=log: RESUMED.search(log.read_text()) and log.read_text(),
                            process, "the resume")
            step = resumed_at(text)
            assert step == expected, f"resumed at {step}, newest complete was {expected}"
            assert "is damaged" not in text, text  # saves are atomic: nothing half-written counts
            removed = re.search(r"removed leftovers of interrupted or damaged saves: (.*)", text)
            stale = {n for n in left if "_temp" in n or int(re.findall(r"\d+", n)[0]) > step}
            assert stale <= set(removed[1].split(", ") if removed else []), (stale, text)
            figures["resumes"] += 1
            figures["leftover_files_removed"] += len(stale)
            figures["max_steps_lost"] = max(figures["max_steps_lost"], reached - step)
            figures["events"][-1].update(resumed=step, lost=reached - step)
        if last:
            assert finish(process).returncode == 0, log.read_text()[-3000:]
            break
        # Kill only once this process trains: a kill during start-up would test nothing new.
        wait_for(lambda rows=rows_before: len(metrics_steps(run)) > rows, process, "training")
        if every == 1:
            time.sleep(rng.uniform(0, 0.3))
            wait_for(lambda: any("_temp" in n for n in os.listdir(run / "checkpoints")),
                     process, "a save")
            time.sleep(rng.uniform(0, 0.004))
            figures["aimed_at_saves"] += 1
        else:
            time.sleep(rng.uniform(0, 1.5))
        process.kill()
        assert finish(process).returncode == -signal.SIGKILL, "ganctl ended before the kill"
        figures["kills"] += 1
        left = leftovers(run)
        figures["left_half_written_files"] += bool(left)
        for step in complete_steps(run):  # every checkpoint that looks complete really is
            tensors(run / "checkpoints" / f"ckpt-{step}")
        expected = complete_steps(run)[-1]
        reached = max([expected, *metrics_steps(run)[rows_before:]])
        figures["events"].append({"kill": i + 1, "aimed_at_save": every == 1,
                                  "checkpoint_every": every, "reached": reached,
                                  "leftovers": left})
        say(f"kill {i + 1}: reached step {reached}, newest complete {expected}, left {left}")
    assert leftovers(run) == [], leftovers(run)
    steps = complete_steps(run)
    assert len(steps) == keep and steps[-1] == reached + 15, steps
    import tensorflow as tf

    assert tf.train.latest_checkpoint(str(run / "checkpoints")).endswith(f"ckpt-{steps[-1]}")
    figures["seconds"] = round(time.monotonic() - started, 1)
    return figures


@pytest.mark.slow
def test_sigkill_at_random_moments_and_in_saves_always_resumes_from_newest_complete(tmp_path):
    figures = kill_test(tmp_path, kills=int(os.environ.get("GANCTL_KILLS", "6")))
    assert figures["kills"] == figures["resumes"] >= 6
    assert figures["aimed_at_saves"] == figures["kills"] // 2
    assert figures["left_half_written_files"] >= 1  # the kills really hit saves in progress
    assert figures["max_steps_lost"] <= 7 + 1  # checkpoint_every, plus the save it interrupted


# --- 2. Exact resume ----------------------------------------------------------------------------

def test_resume_after_sigkill_is_bit_identical_dropout_included(tmp_path):
    """N steps in one go == N/2, SIGKILL, resume: weights, Adam slots, step and every RNG state."""
    args = [*TINY, "model.discriminator.dropout=0.3", "train.deterministic=true",
            "train.steps=200", "train.checkpoint_every=100", "train.log_every=100"]
    whole, halves = tmp_path / "whole", tmp_path / "halves"
    one_go = start("train", *args, f"hydra.run.dir={whole}", cwd=tmp_path)
    killed = start("train", *args, f"hydra.run.dir={halves}", cwd=tmp_path)
    wait_for(lambda: complete_steps(halves) == [100], killed, "ckpt-100")
    killed.kill()
    assert finish(killed).returncode == -signal.SIGKILL  # killed mid-run, not finished
    assert finish(one_go).returncode == 0
    resumed = finish(start("train", f"resume={halves}", cwd=tmp_path))
    assert resumed.returncode == 0 and resumed_at(output(resumed)) == 100, resumed.stderr[-3000:]

    a, b = tensors(whole / "checkpoints/ckpt-200"), tensors(halves / "checkpoints/ckpt-200")
    assert a.keys() == b.keys()
    assert [k for k in a if not np.array_equal(a[k], b[k])] == []
    # The dropout RNG states are in the checkpoint and were used: without them it would differ.
    dropout = [k for k in a if k.startswith("layer_rngs/")]
    middle = tensors(halves / "checkpoints/ckpt-100")
    assert len(dropout) == 3 and all(not np.array_equal(a[k], middle[k]) for k in dropout)
    assert a["step/.ATTRIBUTES/VARIABLE_VALUE"] == 200 and any(k.startswith("d_optimizer/")
                                                               for k in a)


# --- 3. SIGTERM / SIGINT --------------------------------------------------------------------------

def test_sigterm_and_sigint_checkpoint_the_current_step_and_say_how_to_resume(tmp_path):
    runs = {sig: tmp_path / sig.name for sig in (signal.SIGTERM, signal.SIGINT)}
    processes = {sig: start(*tiny_train(run, "train.steps=1000000", "train.log_every=10",
                                        "train.checkpoint_every=1000000"), cwd=tmp_path)
                 for sig, run in runs.items()}
    for sig, process in processes.items():  # mid-training, at no particular step
        wait_for(lambda run=runs[sig]: (run / "metrics.jsonl").is_file()
                 and len(metrics_steps(run)) >= 2, process, "training")
        time.sleep(random.uniform(0, 0.3))
        process.send_signal(sig)
    results = {sig: finish(p, timeout=60) for sig, p in processes.items()}
    for sig, result in results.items():
        assert result.returncode == 128 + sig, result.stderr[-3000:]  # 143 and 130
        message = error_of(result)
        match = re.search(rf"stopped by {sig.name} at step (\d+); checkpoint saved\. Continue "
                          rf"with: ganctl train resume={re.escape(str(runs[sig]))}$", message)
        assert match, message
        step = int(match[1])
        assert complete_steps(runs[sig]) == [step] and step >= 20  # that step, not a periodic one
        assert metrics_steps(runs[sig])[-1] == step  # (resuming it is what every test here does)


# --- 4-7. Full disk, damaged checkpoints, another architecture, retention -----------------------

def _full_disk():
    """In the child: writes past 8 KiB fail with EFBIG, as on a full disk (a checkpoint of the
    tiny model is about 13 KiB; the logs stay smaller). Ignoring SIGXFSZ turns the signal that
    would kill the process into the error a full disk gives."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (8192, 8192))


@pytest.fixture(scope="module")
def base_run(tmp_path_factory) -> Path:
    """10 steps, a checkpoint every 2, keep 4: ckpt-4, -6, -8 and -10 remain (ckpt-2 pruned)."""
    root = tmp_path_factory.mktemp("base")
    result = side_by_side(tiny_train(root / "run", "train.steps=10", "train.checkpoint_every=2",
                                     "train.keep_checkpoints=4", "train.log_every=1"), cwd=root)[0]
    assert result.returncode == 0, result.stderr[-3000:]
    return root / "run"


def _flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def _edit_config(run: Path, old: str, new: str) -> None:
    text = (run / "config.yaml").read_text()
    assert text.count(old) == 1, text
    (run / "config.yaml").write_text(text.replace(old, new))


def _damage_three_newest(checkpoints: Path) -> None:
    (checkpoints / "ckpt-10.index").unlink()  # a save that never finished
    _flip_byte(checkpoints / "ckpt-8.data-00000-of-00001")
    os.truncate(checkpoints / "ckpt-6.data-00000-of-00001", 1000)


def _garbage_state_and_leftovers(checkpoints: Path) -> None:
    (checkpoints / "checkpoint").write_text("\x00\x13garbage {{{\n")
    shutil.copy(checkpoints / "ckpt-4.data-00000-of-00001",
                checkpoints / "ckpt-1.data-00000-of-00001")  # a stray file without an index
    (checkpoints / "ckpt-11_temp_temp").mkdir()  # what a killed save leaves
    (checkpoints / "ckpt-11_temp.index").write_text("half")


# name: (damage to checkpoints/, extra resume arguments); each resumes a copy of the base run.
DAMAGE = {
    "three_newest_damaged": (_damage_three_newest, []),
    "garbage_state_and_leftovers": (_garbage_state_and_leftovers, ["train.keep_checkpoints=2"]),
    "no_complete_checkpoint": (lambda c: [p.unlink() for p in c.glob("*.index")], []),
    "wider": (lambda c: _edit_config(c.parent, "build_generator\n    width: 8",
                                     "build_generator\n    width: 16"), []),
    "deeper": (lambda c: _edit_config(c.parent, "build_discriminator\n    width: 8\n    depth: 3",
                                      "build_discriminator\n    width: 8\n    depth: 4"), []),
    "full_disk": (lambda c: None, []),
}


@pytest.fixture(scope="module")
def damaged(base_run, tmp_path_factory) -> dict[str, SimpleNamespace]:
    """A copy of the base run per kind of damage, all resumed side by side to step 12."""
    root = tmp_path_factory.mktemp("damaged")
    cases = {}
    for name, (damage, extra) in DAMAGE.items():
        run = root / name
        shutil.copytree(base_run, run)
        damage(run / "checkpoints")
        before = snapshot(run)
        popen = {"preexec_fn": _full_disk} if name == "full_disk" else {}
        process = start("train", f"resume={run}", "train.steps=12", *extra, cwd=root, **popen)
        cases[name] = SimpleNamespace(run=run, before=before, process=process)
    for case in cases.values():
        case.result = finish(case.process)
        case.text = output(case.result)
    return cases


def test_damaged_or_incomplete_newest_checkpoints_are_named_and_skipped(damaged):
    case = damaged["three_newest_damaged"]
    assert case.result.returncode == 0, case.text[-3000:]
    for reason in (r"ckpt-10 is incomplete \(its index file is missing",
                   r"checkpoint \S+/ckpt-8 is damaged \(.*[Cc]hecksum",  # the flipped byte
                   r"checkpoint \S+/ckpt-6 is damaged \("):  # the truncated file
        assert re.search(reason + r".*; using ckpt-4 instead\.", case.text), case.text[-3000:]
    assert resumed_at(case.text) == 4
    # Written anew as training passed them again; every one reads back whole.
    assert complete_steps(case.run) == [6, 8, 10, 12] and leftovers(case.run) == []
    assert all_finite(case.run)


def test_garbage_state_file_is_named_and_ignored_and_leftovers_removed(damaged):
    case = damaged["garbage_state_and_leftovers"]
    assert case.result.returncode == 0, case.text[-3000:]
    assert re.search(r"checkpoints/checkpoint is not a valid TensorFlow checkpoint state file",
                     case.text)
    assert resumed_at(case.text) == 10  # the newest complete one: the index files decide
    assert re.search(r"removed leftovers .*ckpt-11_temp", case.text)
    # Retention across a resume: ckpt-4..8 from before it and the stray ckpt-1 are gone too.
    assert sorted(p.name for p in (case.run / "checkpoints").iterdir()) == [
        "checkpoint", "ckpt-10.data-00000-of-00001", "ckpt-10.index",
        "ckpt-12.data-00000-of-00001", "ckpt-12.index"]
    import tensorflow as tf

    assert tf.train.latest_checkpoint(str(case.run / "checkpoints")).endswith("ckpt-12")


def test_retention_keeps_exactly_keep_checkpoints_and_the_newest(base_run):
    assert complete_steps(base_run) == [4, 6, 8, 10] and leftovers(base_run) == []


def test_no_complete_checkpoint_is_an_explicit_error_never_a_fresh_run(damaged):
    case = damaged["no_complete_checkpoint"]
    assert case.result.returncode == 2
    message = error_of(case.result)
    assert re.search(r"holds no complete, readable checkpoint: ckpt-10 is incomplete .* ckpt-4 "
                     r"is incomplete .*never starts such a run again from step 0", message), message
    assert unchanged(case.run, case.before)


@pytest.mark.parametrize("change", ["wider", "deeper"])
def test_checkpoint_of_another_width_or_depth_is_refused_and_the_run_untouched(damaged, change):
    case = damaged[change]
    assert case.result.returncode == 2
    message = error_of(case.result)
    assert re.search(r"checkpoint \S+/ckpt-10 does not fit this model: .*shape.* It was written "
                     r"for a model of another width, depth or image size", message), message
    assert unchanged(case.run, case.before)  # same files, sizes and mtimes


def test_full_disk_at_checkpoint_time_keeps_the_previous_checkpoint(damaged, base_run):
    case = damaged["full_disk"]
    assert case.result.returncode == 4
    message = error_of(case.result)
    assert re.search(r"could not write checkpoint \S+/ckpt-12: .*File too large.* The disk may be "
                     r"full\. Nothing of this save was kept and the newest complete checkpoint is "
                     rf"still step 10 \(ckpt-10\)\. .* resume={re.escape(str(case.run))}$", message)
    checkpoints = case.run / "checkpoints"
    assert complete_steps(case.run) == [4, 6, 8, 10] and leftovers(case.run) == []
    for name in ("ckpt-10.index", "ckpt-10.data-00000-of-00001", "checkpoint"):
        assert (checkpoints / name).read_bytes() == (base_run / "checkpoints" / name).read_bytes()

    resumed = finish(start("train", f"resume={case.run}", "train.steps=12", cwd=case.run.parent))
    assert resumed.returncode == 0 and resumed_at(output(resumed)) == 10
    assert complete_steps(case.run) == [6, 8, 10, 12]


# --- 8. Divergence ------------------------------------------------------------------------------

def test_nan_stops_or_rolls_back_and_no_checkpoint_holds_it(tmp_path):
    lsgan = ["loss=lsgan", "train.steps=30", "train.log_every=1", "train.checkpoint_every=2"]
    absurd = [*lsgan, "train.g_lr=1e6", "train.d_lr=1e6"]
    runs = {name: tmp_path / name for name in ("stop", "give_up", "recover")}
    stop, give_up, recover = side_by_side(
        tiny_train(runs["stop"], *absurd),
        tiny_train(runs["give_up"], *absurd, "train.on_nan=rollback", "train.nan_retries=2"),
        # lr 10 goes non-finite within a few steps; halved once or twice it trains.
        tiny_train(runs["recover"], *lsgan, "train.g_lr=10", "train.d_lr=10",
                   "train.deterministic=true", "train.on_nan=rollback", "train.nan_retries=4"),
        cwd=tmp_path)

    assert stop.returncode == 3
    message = error_of(stop)
    assert re.search(r"training diverged: a loss became NaN or Inf at step 1 \(at step 1: "
                     r"[dg]_loss=(nan|inf).*\)\. No checkpoint holds it\.", message), message
    assert complete_steps(runs["stop"]) == []

    assert give_up.returncode == 3
    assert re.findall(r"Rolled back to step 0, learning rates halved to g_lr (\S+),",
                      output(give_up)) == ["5e+05", "2.5e+05"]
    assert re.search(r"at step \d.* Gave up after train\.nan_retries=2 rollbacks",
                     error_of(give_up))
    assert complete_steps(runs["give_up"]) == [0] and all_finite(runs["give_up"])

    assert recover.returncode == 0, recover.stderr[-3000:]
    halvings = len(re.findall(r"Rolled back to step \d+", output(recover)))
    assert halvings >= 1
    final = tensors(runs["recover"] / "checkpoints/ckpt-30")
    for network in ("g", "d"):  # the halved rate was saved, so a resume keeps it
        assert final[f"{network}_optimizer/_learning_rate/.ATTRIBUTES/VARIABLE_VALUE"] == \
            np.float32(10 / 2 ** halvings)
    assert all_finite(runs["recover"])


# --- 9-10. Bad input and bad data: a clear error, nothing left behind ---------------------------

def _png_folder(folder: Path, broken: bool = False) -> Path:
    from PIL import Image

    folder.mkdir(parents=True)
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(folder / "good.png")
    if broken:
        (folder / "broken.png").write_bytes((folder / "good.png").read_bytes()[:60])
    return folder


def _idx_folder(folder: Path, damage) -> Path:
    write_mnist_like(folder)
    images = folder / "train-images-idx3-ubyte.gz"
    damage(images)
    return folder


def _gz(path: Path, data: bytes) -> None:
    import gzip

    path.write_bytes(gzip.compress(data))


def _gunzip(path: Path) -> bytes:
    import gzip

    return gzip.decompress(path.read_bytes())


MLP = ["model=mlp", "model.generator.width=8", "model.discriminator.width=8"]


def test_bad_data_and_impossible_shapes_fail_before_training_naming_the_file(tmp_path):
    """Through the CLI, one case per reader; tests/test_datasets.py has every variant (empty
    folder, only non-images, undecodable files skipped, truncated IDX...) at the dataset level,
    and tests/test_cli.py the other bad input of the issue."""
    data = tmp_path / "data"
    folder = ["dataset=folder", "dataset.resolution=32"]
    cases = {
        "resolution": (["train", "dataset=folder", f"dataset.path={_png_folder(data / 'ok')}",
                        "dataset.resolution=27"],
                       r"dcgan cannot be built for 27x27 images.*Sizes that work include"),
        "missing folder": (["train", *MLP, *folder, f"dataset.path={data / 'nope'}"],
                           rf"dataset\.path={data / 'nope'} does not exist"),
        "corrupt image": (["train", *MLP, *folder, "dataset.on_bad_file=error",
                           f"dataset.path={_png_folder(data / 'broken', broken=True)}"],
                          rf"{data}/broken/broken\.png is not a readable image"),
        "idx magic": (["train", *MLP, "dataset=fashion_mnist", "dataset.path=" + str(_idx_folder(
            data / "magic", lambda p: _gz(p, b"\x08\x08" + _gunzip(p)[2:])))],
                      r"train-images-idx3-ubyte\.gz is not an IDX file: its magic number"),
    }
    folders, processes = {}, {}
    for name, (args, _) in cases.items():
        folders[name] = tmp_path / name.replace(" ", "_")
        folders[name].mkdir()
        processes[name] = start(*args, cwd=folders[name])
    for name, process in processes.items():
        result = finish(process)
        assert result.returncode == 2, (name, result.stderr[-3000:])
        assert re.search(cases[name][1], error_of(result)), (name, error_of(result))
        assert os.listdir(folders[name]) == [], name  # no run folder, no empty outputs/<date>/


# --- 11. A sweep with failing jobs --------------------------------------------------------------

def test_sweep_with_a_diverging_and_a_bad_data_job_finishes_the_others(tmp_path):
    experiments = tmp_path / "conf" / "experiment"
    experiments.mkdir(parents=True)
    ring = "# @package _global_\ndefaults:\n  - override /dataset: ring\ndataset:\n  size: 256\n"
    (experiments / "diverge.yaml").write_text(ring.replace("ring\n", "ring\n  - override /loss: "
                                                           "lsgan\n")
                                              + "train:\n  g_lr: 1.0e6\n  d_lr: 1.0e6\n")
    # Passes the up-front check (it is a valid config); the folder is only opened at run time.
    (experiments / "missing_data.yaml").write_text(
        "# @package _global_\ndefaults:\n  - override /dataset: folder\ndataset:\n"
        f"  path: {tmp_path / 'no_such_folder'}\n  resolution: 8\n")
    (experiments / "ok_a.yaml").write_text(ring + "seed: 1\n")
    (experiments / "ok_b.yaml").write_text(ring + "seed: 2\n")
    sweep = tmp_path / "sweep"
    result = side_by_side(["train", "-m", "--config-dir", str(tmp_path / "conf"),
                           "experiment=diverge,missing_data,ok_a,ok_b", *MLP,
                           "train.batch_size=16", "train.steps=3", "train.progress=false",
                           f"hydra.sweep.dir={sweep}"], cwd=tmp_path)[0]
    assert result.returncode == 1, result.stderr[-3000:]
    summary = result.stdout[result.stdout.find("\nsweep "):]
    assert "2 ok, 2 failed" in summary, result.stdout[-3000:]
    assert re.search(r"failed 0_\S*experiment=diverge\S*\s+\(training diverged: a loss became "
                     r"NaN", summary), summary
    assert re.search(r"failed 1_\S*experiment=missing_data\S*\s+\(dataset\.path=\S+no_such_"
                     r"folder does not exist", summary), summary
    for job in ("2", "3"):  # after the failures, still done
        assert re.search(rf"ok\s+{job}_\S*experiment=ok_", summary), summary
        assert complete_steps(next(sweep.glob(f"{job}_*"))) == [3]
    # A job folder's name holds ',' and '=' (Hydra's own syntax), yet resume= takes it as it is.
    job = next(sweep.glob("3_*"))
    assert "," in job.name
    resumed = side_by_side(["train", f"resume={job}", "train.steps=4"], cwd=tmp_path)[0]
    assert resumed.returncode == 0 and resumed_at(output(resumed)) == 3, resumed.stderr[-3000:]


# --- 12. Safety ---------------------------------------------------------------------------------

PLANTED = {  # config key -> (what is there, a _target_ that must never be called, commands)
    "model.generator": ("_target_: ganctl.models.mlp.build_generator",
                        "_target_: os.system\n    command: touch {marker}", ("sample",)),
    # A ganctl function, but not a dataset class: it would fetch a file.
    "dataset": ("_target_: ganctl.datasets.mixtures.Ring",
                "_target_: ganctl.datasets.base.download\n  fname: x\n  origin: file://{marker}",
                ("train",)),
    # A name ganctl merely imports (pathlib.Path); sample never builds a loss.
    "loss": ("_target_: ganctl.losses.ns.NonSaturating",
             "_target_: ganctl.rundir.Path\n  args: {marker}", ("train",)),
}


def test_targets_planted_in_a_run_config_never_run(tmp_path, base_run):
    marker = tmp_path / "MARKER"
    commands, runs = [], {}
    for key, (old, new, used_by) in PLANTED.items():
        for command in used_by:
            run = runs[key, command] = tmp_path / f"{key}-{command}"
            shutil.copytree(base_run, run)
            _edit_config(run, old, new.format(marker=marker))
            commands.append(["sample", f"run={run}", f"out={tmp_path / 'x.png'}"]
                            if command == "sample" else ["train", f"resume={run}"])
    befores = {k: snapshot(run) for k, run in runs.items()}
    for (key, command), result in zip(runs, side_by_side(*commands, cwd=tmp_path)):
        assert result.returncode == 2, result.stderr[-3000:]
        assert re.search(rf"{re.escape(key)}\._target_=\S+ is not allowed", error_of(result))
        assert unchanged(runs[key, command], befores[key, command])
    assert not marker.exists() and not (tmp_path / "x.png").exists()


def test_keras_files_load_in_safe_mode_and_a_lambda_layer_is_refused(tmp_path):
    """safe_mode=True, as ganctl loads .keras files, refuses a Lambda layer that unsafe runs."""
    import keras

    marker = tmp_path / "MARKER"
    inputs = keras.Input((2,))
    touch = keras.layers.Lambda(eval(f"lambda x: (open({str(marker)!r}, 'a').close(), x)[1]"))
    keras.Model(inputs, touch(inputs)).save(tmp_path / "evil.keras")
    marker.unlink()  # building the model ran it once
    with pytest.raises(ValueError, match="Lambda"):
        keras.models.load_model(tmp_path / "evil.keras", compile=False, safe_mode=True)
    assert not marker.exists()
    keras.models.load_model(tmp_path / "evil.keras", compile=False, safe_mode=False)
    assert marker.exists()  # the file really carries code


def _calls(tree: ast.AST, name: str):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if called == name:
                yield node


def _keyword(call: ast.Call, name: str):
    return next((k.value.value for k in call.keywords
                 if k.arg == name and isinstance(k.value, ast.Constant)), None)


def test_nothing_ganctl_loads_can_run_code():
    """No pickle, numpy loads without pickles, .keras loads in safe mode, no instantiate()."""
    problems = []
    for path in sorted((ROOT / "ganctl").rglob("*.py")):
        tree = ast.parse(path.read_text())
        where = path.relative_to(ROOT)
        for node in ast.walk(tree):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            if any(n.split(".")[0] in ("pickle", "dill", "cloudpickle", "joblib", "shelve",
                                       "marshal") for n in names):
                problems.append(f"{where}: imports {names}")
            if isinstance(node, ast.ImportFrom) and "instantiate" in [a.name for a in node.names]:
                problems.append(f"{where}: imports instantiate")
        for call in _calls(tree, "load"):
            if ast.unparse(call.func) in ("np.load", "numpy.load") and \
                    _keyword(call, "allow_pickle") is not False:
                problems.append(f"{where}:{call.lineno}: np.load without allow_pickle=False")
        for call in _calls(tree, "load_model"):
            if _keyword(call, "safe_mode") is not True:
                problems.append(f"{where}:{call.lineno}: load_model without safe_mode=True")
        for name in ("instantiate", "eval", "exec"):
            problems += [f"{where}:{c.lineno}: {name}()" for c in _calls(tree, name)
                         if isinstance(c.func, ast.Name) or name == "instantiate"]
    assert problems == []


def test_keras_is_pinned_past_the_known_safe_mode_bypasses():
    """CVE-2025-1550 (fixed 3.9), -8747/-9906 (3.11.0), -9905 (3.11.3), -12058/-12060 (3.12),
    CVE-2026-1462 and -0897 (3.13.2/3.14), GHSA-hqp4-2352-xf5r path traversal (3.14.0)."""
    import keras

    pin = re.search(r'"keras>=(\d+)\.(\d+)', (ROOT / "pyproject.toml").read_text())
    assert pin and (int(pin[1]), int(pin[2])) >= (3, 14)
    assert tuple(int(x) for x in keras.__version__.split(".")[:2]) >= (int(pin[1]), int(pin[2]))


def test_hydra_rerun_which_unpickles_is_refused(tmp_path):
    evil = tmp_path / "config.pickle"
    evil.write_bytes(b"cos\nsystem\n(S'touch " + str(tmp_path / "MARKER").encode() + b"'\ntR.")
    result = subprocess.run([*GANCTL, "train", "--experimental-rerun", str(evil)], cwd=tmp_path,
                            capture_output=True, text=True)
    assert result.returncode == 2 and "unpickles a file" in error_of(result)
    assert not (tmp_path / "MARKER").exists()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="The kill test of issue 4, with its figures.")
    parser.add_argument("--kills", type=int, default=24)
    parser.add_argument("--seed", type=int, default=0)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ganctl-killtest-") as workdir:
        result = kill_test(Path(workdir), options.kills, options.seed,
                           say=lambda message: print(message, file=sys.stderr, flush=True))
    events = result.pop("events")
    print(json.dumps(result))
    print(json.dumps(events), file=sys.stderr)
