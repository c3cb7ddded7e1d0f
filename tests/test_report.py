"""report.html and TensorBoard images, from real tiny training runs, checked as a user sees them."""
from __future__ import annotations

import importlib.util
import io
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.browser import Browser, chromium
from tests.helpers import GANCTL, ganctl

RING = ["dataset=ring", "dataset.size=512", "model=mlp", "model.generator.width=16",
        "model.discriminator.width=16", "train.batch_size=32", "train.log_every=5",
        "train.progress=false"]
STEPS, SAMPLE_EVERY = 30, 10


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    """A sweep as `ganctl train -m` leaves it: two jobs that trained and evaluated, and two that
    failed before training (a DCGAN cannot draw the ring's 2-D points)."""
    root = tmp_path_factory.mktemp("report")
    folder = root / "sweep"
    ring = [a.replace("model=mlp", "model=mlp,dcgan") for a in RING]
    result = ganctl("train", "-m", *ring, f"train.steps={STEPS}", f"train.sample_every={SAMPLE_EVERY}",
                    "train.checkpoint_every=10", "train.eval_every=10", "train.eval_num=256",
                    "seed=0,1", f"hydra.sweep.dir={folder}", cwd=root)
    assert result.returncode == 1 and "2 ok, 2 failed" in result.stdout, result.stderr
    assert f"report: {folder / 'report.html'}" in result.stdout
    return folder


def jobs(sweep: Path) -> list[Path]:
    return sorted(p for p in sweep.iterdir() if (p / "config.yaml").is_file())


def _embedded_sources(page: str) -> list[str]:
    return re.findall(r'\b(?:src|href)="([^"]*)"', page) + re.findall(r"url\(([^)]*)\)", page)


def test_each_run_and_the_sweep_end_with_a_self_contained_report(sweep):
    for job in jobs(sweep):
        page = (job / "report.html").read_text()
        assert "Content-Security-Policy" in page and "default-src 'none'; img-src data:" in page
        # Nothing but data: URIs (and no link out): the page needs no network and no other file.
        assert all(s.startswith("data:image/png;base64,") for s in _embedded_sources(page))
        shots = sorted((job / "samples").glob("step_*.png"))
        assert len(shots) == STEPS // SAMPLE_EVERY + 1 == page.count('data-step="step ')
        last = shots[-1].read_bytes()
        assert _data_uri(last) in page                      # the newest grid itself, embedded
        assert _data_uri((job / "reals.png").read_bytes()) in page
        best = json.loads((job / "checkpoints" / "best" / "best.json").read_text())
        assert f"fid {best['value']:.4g} at step {best['step']}" in page
        assert f"best: step {best['step']}" not in page     # that label is inside the plot PNG
        assert "finished" in page and f"{STEPS} of {STEPS}" in page
        assert "ring / mlp / ns" in page and "ckpt-30" in page and "generator.keras" in page
        assert "train:" in page and "eval_every: 10" in page   # the resolved config

    page = (sweep / "report.html").read_text()
    assert all(s.startswith("data:image/png;base64,") or s.endswith("/report.html")
               for s in _embedded_sources(page))
    # Sorted like `ganctl eval sweep=`: lower FID first, from each job's in-training evaluation.
    last_fid = {}
    for job in jobs(sweep):
        rows = [json.loads(line) for line in (job / "metrics.jsonl").read_text().splitlines()]
        last_fid[job.name] = [r for r in rows if "eval/fid" in r][-1]["eval/fid"]
    listed = re.findall(r'<a href="([^"/]+)/report.html"', page)
    assert listed == sorted(last_fid, key=last_fid.get)
    assert "sorted by fid, best first" in page
    rows = re.findall(r"<tr><td>(\d+)</td><td>(.*?)</td><td>(.*?)</td><td>(.*?)</td>", page)
    assert [r[0] for r in rows] == ["1", "2", "3", "4"]
    assert all("model=mlp" in r[2] and "finished" in r[3] for r in rows[:2])
    assert all("model=dcgan" in r[2] and "failed" in r[3] and "needs image data" in
               " ".join(r[3].split()) for r in rows[2:])                 # jobs without metrics last
    for job in jobs(sweep):
        assert _data_uri(sorted((job / "samples").glob("step_*.png"))[-1].read_bytes()) in page

    # On demand: the sweep's page again, and any job page that is missing or older than its run.
    (jobs(sweep)[1] / "report.html").unlink()
    result = ganctl("report", f"sweep={sweep}", cwd=sweep)
    assert result.returncode == 0 and f"wrote {sweep / 'report.html'}" in result.stdout, result.stderr
    assert (jobs(sweep)[1] / "report.html").is_file()


def _data_uri(png: bytes) -> str:
    import base64

    return "data:image/png;base64," + base64.b64encode(png).decode()


@pytest.mark.skipif(chromium() is None, reason="needs headless Chromium: apt-get install chromium "
                    "(.ci/run installs it)")
def test_reports_open_in_chromium_without_errors_or_requests_and_show_the_page(sweep, tmp_path):
    browser = Browser()
    try:
        # The checker itself catches both: a page that fetches and logs an error.
        leaky = tmp_path / "leaky.html"
        leaky.write_text('<html><body><img src="http://127.0.0.1:9/x.png">'
                         '<script>console.error("broken")</script></body></html>')
        seen = browser.open(leaky, settle=0.3)
        assert "http://127.0.0.1:9/x.png" in seen["requests"] and seen["errors"]

        for page in (jobs(sweep)[0] / "report.html", sweep / "report.html"):
            seen = browser.open(page, settle=0.5)
            assert seen["errors"] == [], seen["errors"]
            outside = [u for u in seen["requests"] if not u.startswith(("data:", page.as_uri()))]
            assert outside == [], outside
            shot = Image.open(io.BytesIO(seen["screenshot"])).convert("RGB")
            keep = os.environ.get("GANCTL_SCREENSHOTS")   # a folder: keep them to look at
            if keep:
                shot.save(Path(keep) / f"{page.parent.name}.png")
            pixels = np.asarray(shot).astype(np.int32)
            # As wide as the window (nothing sticks out sideways), and long: plots, grids, tables.
            assert shot.width == 1280 and shot.height >= 1200, shot.size
            colours = pixels[..., 0] << 16 | pixels[..., 1] << 8 | pixels[..., 2]
            assert len(np.unique(colours)) > 200   # plots, grids, text: not a blank page
            assert (pixels.std(axis=(0, 1)) > 20).all()
            if page.parent != sweep:
                # The slider (the page's one script, allowed by its hash) steps through the grids.
                label = browser.evaluate(
                    "var s = document.querySelector('.slider'); s.value = 0;"
                    "s.dispatchEvent(new Event('input'));"
                    "[document.querySelector('.step').textContent,"
                    " document.querySelectorAll('.frames img.shown').length,"
                    " document.querySelector('.frames img.shown').dataset.step]")
                assert label == ["step 0", 1, "step 0"]
    finally:
        browser.close()


def test_report_on_demand_mid_run_and_again_when_sigterm_stops_it(tmp_path):
    run = tmp_path / "run"
    env = {**os.environ, "GANCTL_OFFLINE": "1", "TF_CPP_MIN_LOG_LEVEL": "3",
           "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    training = subprocess.Popen([*GANCTL, "train", *RING, "train.steps=100000",
                                 "train.sample_every=50", "train.checkpoint_every=1000",
                                 f"hydra.run.dir={run}"], cwd=tmp_path, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 180
        while not ((run / "metrics.jsonl").is_file()
                   and len((run / "metrics.jsonl").read_text().splitlines()) >= 2):
            assert training.poll() is None and time.monotonic() < deadline, training.stderr.read()
            time.sleep(0.3)
        result = ganctl("report", f"run={run}", cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        assert re.match(rf"wrote {re.escape(str(run / 'report.html'))}  \(\d+ KB in [\d.]+ s",
                        result.stdout)
        page = (run / "report.html").read_text()
        assert re.search(r"training \(step \d+ of 100000\)", page)
    finally:
        training.send_signal(signal.SIGTERM)
        _, stderr = training.communicate(timeout=120)
    assert training.returncode == 143, stderr
    page = (run / "report.html").read_text()
    step = re.search(r"stopped by SIGTERM at step (\d+)", page)
    assert step, page[:3000]
    assert f"ckpt-{step.group(1)}" in page                     # the checkpoint saved on the signal


@pytest.mark.parametrize("args, message", [
    ([], r"ganctl report writes one report: give run=<run dir> .* or sweep=<multirun dir>"),
    (["run=RUN", "sweep=RUN"], r"give run=.* or sweep=.*, not both\."),
    (["run=MISSING"], r"run=\S+ is not a directory\. Give a run directory made by `ganctl train`"),
    (["sweep=RUN"], r"sweep=\S+ is not a multirun directory \(it has no multirun.yaml\).*For one "
                    r"run use run=<run dir>\."),
    (["runs=MISSING"], r"runs is not a ganctl setting\. Did you mean run\?"),
])
def test_bad_report_input_is_one_paragraph(sweep, tmp_path, args, message):
    run = jobs(sweep)[0]
    args = [a.replace("MISSING", str(tmp_path / "nope")).replace("RUN", str(run)) for a in args]
    result = ganctl("report", *args, cwd=tmp_path)
    assert result.returncode == 2, (result.stdout, result.stderr)
    error = " ".join(result.stderr.split())
    assert error.startswith("ganctl: error: ") and "Traceback" not in error
    assert re.search(message, error), error


def test_tensorboard_gets_every_snapshot_grid_and_the_evaluations(sweep):
    """Written by TensorFlow alone (this environment has no tensorboard package, as a training
    machine need not), in the layout TensorBoard's images and text dashboards read."""
    import tensorflow as tf
    from tensorflow.core.util import event_pb2

    job = jobs(sweep)[0]
    images, texts = {}, {}
    for events in (job / "tensorboard").glob("events.out.tfevents.*"):
        for record in tf.data.TFRecordDataset(str(events)):
            event = event_pb2.Event.FromString(record.numpy())
            for value in event.summary.value:
                plugin = value.metadata.plugin_data.plugin_name
                if plugin == "images":
                    images[(value.tag, event.step)] = value.tensor.string_val
                elif plugin == "text":
                    texts[(value.tag, event.step)] = value.tensor.string_val[0].decode()
    assert sorted(images) == [("samples", s) for s in range(0, STEPS + 1, SAMPLE_EVERY)]
    for (_, step), (width, height, png) in images.items():
        snapshot = Image.open(job / "samples" / f"step_{step:06d}.png")
        assert (int(width), int(height)) == snapshot.size
        assert np.array_equal(np.asarray(Image.open(io.BytesIO(png))), np.asarray(snapshot))
    assert sorted(texts) == [("eval", s) for s in range(10, STEPS + 1, 10)]
    assert all(re.search(r"\| eval/fid \| [\d.]+ \|", t) for t in texts.values())
    if importlib.util.find_spec("tensorboard") is not None:   # where it is: its own reader too
        from tensorboard.backend.event_processing import plugin_event_multiplexer

        multiplexer = plugin_event_multiplexer.EventMultiplexer()
        multiplexer.AddRunsFromDirectory(str(job))
        multiplexer.Reload()
        assert "samples" in multiplexer.PluginRunToTagToContent("images")["tensorboard"]
        assert "eval" in multiplexer.PluginRunToTagToContent("text")["tensorboard"]


def test_report_help_needs_no_tensorflow_and_neither_does_the_report(tmp_path):
    """`ganctl report` only reads files: a report of a run on a machine busy training is cheap."""
    code = ("import sys; from pathlib import Path; from ganctl.reporting import build_run_report; "
            "build_run_report(Path(sys.argv[1])); "
            "assert not [m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')]")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.yaml").write_text("dataset: {_target_: ganctl.datasets.mnist.MNIST}\n"
                                                  "model: {}\ntrain: {steps: 10}\n")
    result = subprocess.run([sys.executable, "-c", code, str(tmp_path / "run")], capture_output=True,
                            text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    result = subprocess.run([sys.executable, "-X", "importtime", "-m", "ganctl", "report", "--help"],
                            capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0 and "ganctl report" in result.stdout, result.stderr
    imported = {line.split("|")[-1].strip() for line in result.stderr.splitlines()}
    assert not any(m.startswith(("tensorflow", "keras")) for m in imported)


def test_a_long_run_embeds_evenly_spaced_grids_ending_with_the_newest(tmp_path):
    from ganctl.reporting import MAX_SNAPSHOTS, build_run_report

    run = tmp_path / "run"
    (run / "samples").mkdir(parents=True)
    (run / "config.yaml").write_text("dataset: {_target_: ganctl.datasets.mnist.MNIST}\nmodel: {}\n"
                                     "train: {steps: 100000}\n")
    for step in range(0, 100001, 500):   # 201 snapshots
        Image.fromarray(np.full((8, 8), step % 251, np.uint8)).save(
            run / "samples" / f"step_{step:06d}.png")
    page = build_run_report(run)
    steps = [int(s) for s in re.findall(r'data-step="step (\d+)"', page)]
    assert len(steps) == MAX_SNAPSHOTS and steps[0] == 0 and steps[-1] == 100000
    gaps = np.diff(steps)
    assert gaps.max() - gaps.min() <= 500      # evenly spaced, to the nearest snapshot
    assert f"({MAX_SNAPSHOTS} of 201 snapshots, evenly spaced)" in page
    assert "no step logged yet" in page and "stopped at step 0 of 100000" in page
