"""`ganctl eval` end to end: a run, two sample sets, a sweep table, and evaluation during training."""
from __future__ import annotations

import json

import numpy as np
import pytest

from ganctl.errors import UserError
from tests.helpers import compose, ganctl

RING = ["experiment=ring", "train.progress=false"]


@pytest.fixture(scope="module")
def ring_run(tmp_path_factory):
    """A real ring run, long enough to learn (the learning test below relies on it). Trained
    in-process: this file is about `ganctl eval`, and `ganctl train` has its own CLI tests."""
    from ganctl.training.loop import train
    from ganctl.validate import check_train_config

    run = tmp_path_factory.mktemp("ring") / "run"
    run.mkdir()
    cfg = compose("train", [*RING, "train.steps=600", "train.eval_every=300",
                            "train.eval_metrics=[modes]"])
    check_train_config(cfg)
    train(cfg, run)
    return run


def evaluate_in_process(*overrides: str) -> dict:
    """`ganctl eval` without a TF start-up: the command's own function on the composed config."""
    from ganctl.commands.evaluate import run as evaluate

    return evaluate(compose("eval", list(overrides)))


def test_learning_happens_on_the_ring(ring_run, tmp_path):
    """600 steps of mlp on the 8-Gaussian ring put samples near most modes (an untrained G: none)."""
    out = ganctl("eval", f"run={ring_run}", "num=2000", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    result = json.loads((ring_run / "eval" / "metrics.json").read_text())
    assert result["checkpoint_step"] == 600 and result["features"]["name"] == "pixels"
    assert result["metrics"]["modes_covered"] >= 6, result["metrics"]
    assert result["metrics"]["high_quality"] > 0.25, result["metrics"]
    assert "modes_covered" in out.stdout

    rows = [json.loads(line) for line in (ring_run / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in rows if "eval/modes_covered" in r]
    assert [r["step"] for r in evals] == [300, 600]
    best = json.loads((ring_run / "checkpoints" / "best" / "best.json").read_text())
    assert best["value"] == max(r["eval/modes_covered"] for r in evals)
    assert (ring_run / "checkpoints" / "best" / f"ckpt-{best['step']}.index").is_file()


def test_eval_two_sample_sets_and_a_collapsed_generator(ring_run, tmp_path, capsys):
    """fake=/real= scores any two sets; all points on one mode covers exactly one mode."""
    rng = np.random.default_rng(0)
    collapsed = rng.normal([1.0, 0.0], 0.01, (1000, 2)).astype(np.float32)
    np.savez(tmp_path / "collapsed.npz", points=collapsed)
    out = ganctl("eval", f"fake={tmp_path / 'collapsed.npz'}", "real=ring", "metrics=[modes]",
                 cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "modes_covered      1" in out.stdout

    images = rng.integers(0, 256, (300, 28, 28), dtype=np.uint8)
    np.savez(tmp_path / "a.npz", images=images)
    np.savez(tmp_path / "b.npz", images=images[::-1])
    capsys.readouterr()
    evaluate_in_process(f"fake={tmp_path / 'a.npz'}", f"real={tmp_path / 'b.npz'}",
                        "features=pixels", "metrics=[precision_recall]")
    printed = capsys.readouterr().out
    assert "precision          1" in printed and "recall             1" in printed


def test_eval_errors_are_one_paragraph(tmp_path):
    np.savez(tmp_path / "few.npz", images=np.zeros((10, 28, 28), np.uint8))
    # Too few samples is found after loading MNIST (TF): in-process; the CLI's one-paragraph
    # form of it is the same formatter as for the two errors below.
    with pytest.raises(UserError, match="has 10 samples for 196-dimensional features"):
        evaluate_in_process(f"fake={tmp_path / 'few.npz'}", "real=mnist", "features=pixels",
                            "metrics=[fid]")
    cases = [
        (["eval"], "scores one thing"),
        (["eval", "sweep=."], "not a multirun directory"),
    ]
    for args, message in cases:
        out = ganctl(*args, cwd=tmp_path)
        error = out.stderr[out.stderr.find("ganctl: error:"):]  # after any data-source warning
        assert out.returncode == 2 and error and "Traceback" not in out.stderr, out.stderr
        assert message in " ".join(error.split()), out.stderr


def test_sweep_table_sorted_by_metric(tmp_path):
    sweep = tmp_path / "sweep"
    out = ganctl("train", "-m", *RING, "train.steps=50", "model.generator.width=16",
                 "model.discriminator.width=16", "loss=ns,hinge", f"hydra.sweep.dir={sweep}",
                 cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    # In-process: `ganctl eval sweep=` itself runs in test_mistakes.py's stale-row test.
    evaluate_in_process(f"sweep={sweep}", "num=500", "metrics=[modes]", "sort_by=high_quality")
    table = (sweep / "eval_summary.md").read_text().splitlines()
    assert len(table) == 4 and "loss=ns" in "".join(table) and "loss=hinge" in "".join(table)
    column = table[0].split("|").index(" high_quality ")
    values = [float(row.split("|")[column]) for row in table[2:]]
    assert values == sorted(values, reverse=True)
    assert (sweep / "eval_summary.csv").read_text().count("\n") == 3


def test_fid_on_real_data_is_small_and_rises_with_blur_and_noise():
    """Real vs real scores ~0; FID grows monotonically as one half is damaged more."""
    from ganctl.evaluation.sanity import table

    rows = {r["change"]: r for r in table("mnist", features="pixels", n=1000)}
    blur = [rows[k]["fid"] for k in ("none", "blur 0.5", "blur 1", "blur 2")]
    noise = [rows[k]["fid"] for k in ("none", "noise 16", "noise 32", "noise 64")]
    assert blur == sorted(blur) and noise == sorted(noise), rows
    assert rows["none"]["fid"] < 0.25 * rows["blur 1"]["fid"]
    assert rows["none"]["precision"] > 0.8 and rows["none"]["recall"] > 0.8


def test_checkpoint_best_samples_and_scores_the_best_evaluation(ring_run, tmp_path, capsys):
    """checkpoint=best reads checkpoints/best/ (train.eval_every's pick), for sample and eval."""
    from ganctl.commands.sample import run as sample

    best = json.loads((ring_run / "checkpoints" / "best" / "best.json").read_text())
    capsys.readouterr()
    sample(compose("sample", [f"run={ring_run}", "checkpoint=best", "format=npz",
                              f"out={tmp_path / 'best.npz'}"]))
    assert f"step {best['step']}" in capsys.readouterr().out and (tmp_path / "best.npz").is_file()
    out = ganctl("eval", f"run={ring_run}", "checkpoint=best", "num=500", "metrics=[modes]",
                 cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    result = json.loads((ring_run / "eval" / "metrics.json").read_text())
    assert result["checkpoint_step"] == best["step"] and result["checkpoint"] == "best"


@pytest.mark.parametrize("command", ["sample", "eval"])
def test_a_checkpoint_that_is_neither_a_step_nor_best_is_refused(ring_run, tmp_path, command):
    out = ganctl(command, f"run={ring_run}", "checkpoint=latest", cwd=tmp_path)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "checkpoint=latest is not a checkpoint" in out.stderr and "checkpoint=best" in out.stderr
