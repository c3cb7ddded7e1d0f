"""`ganctl export`: each format, loaded where ganctl cannot be imported, gives `ganctl sample`'s images."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import compose, ganctl

NUM, SEED = 20, 3

# What a user runs, with only numpy and TensorFlow: the README's lines for each format.
CALLER = r"""
import importlib.util, json, sys
assert importlib.util.find_spec("ganctl") is None, "ganctl is importable: " + str(sys.path)
import numpy as np, tensorflow as tf, keras
savedmodel, tflite, keras_file, z_dim, num_classes, num, seed = json.loads(sys.argv[1])
noise = np.random.default_rng(seed).standard_normal((num, z_dim)).astype(np.float32)
labels = np.arange(num, dtype=np.int32) % num_classes  # sample's balanced cycle through the classes
generator = tf.saved_model.load(savedmodel)
from_savedmodel = generator.serve(noise, labels)["images"].numpy()
runner = tf.lite.Interpreter(model_path=tflite).get_signature_runner()
from_tflite = runner(noise=noise, labels=labels)["images"]
model = keras.saving.load_model(keras_file)  # safe_mode: stock layers only
fake = model.predict([noise, labels], verbose=0)
from_keras = np.clip(np.rint((fake + 1) * 127.5), 0, 255).astype(np.uint8)
np.savez(sys.argv[2], savedmodel=from_savedmodel, tflite=from_tflite, keras=from_keras,
         labels=labels, float_min=fake.min(), float_max=fake.max())
"""


def _path_without_ganctl() -> str:
    """This interpreter's import path minus every folder ganctl could be imported from.

    With `python -S` no .pth file runs, so the editable install's finder is not installed; the
    folders a .pth added (the shared site-packages) are passed explicitly instead.
    """
    keep = [p for p in sys.path if p and Path(p).is_dir() and not (Path(p) / "ganctl").exists()
            and Path(p).resolve() != Path.cwd().resolve()]
    return os.pathsep.join(keep)


@pytest.fixture(scope="module")
def run_dir(cdcgan_run, tmp_path_factory) -> Path:
    """A copy of conftest's 2-step cdcgan run (exports and the report are written into it)."""
    run = tmp_path_factory.mktemp("export") / "run"
    shutil.copytree(cdcgan_run, run)
    return run


def export_in_process(run_dir: Path, fmt: str) -> Path:
    """`ganctl export` in this process (TF is loaded once); the path it wrote."""
    from ganctl.commands.export import run as export_run

    return export_run(compose("export", [f"run={run_dir}", f"format={fmt}"]))


@pytest.mark.slow  # three exports and a TensorFlow process loading them, on a shared 2-core CPU
def test_every_format_loads_without_ganctl_and_equals_ganctl_sample(run_dir, tmp_path):
    # One format through the real command (its exit code and "wrote" line); the other two call
    # the same command function in this process, to save two TensorFlow start-ups.
    result = ganctl("export", f"run={run_dir}", "format=keras", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    written = {"keras": Path(re.search(r"wrote (\S+)", result.stdout).group(1))}
    written.update({fmt: export_in_process(run_dir, fmt) for fmt in ("savedmodel", "tflite")})
    for path in written.values():
        assert path.exists() and path.parent == run_dir / "export"
    assert "serve(noise float32 (N, 100), labels int32 (N,)) -> images uint8 (N, 28, 28, 1)" in (
        run_dir / "export" / "exports.jsonl").read_text()

    from ganctl.commands.sample import run as sample_run

    reference = sample_run(compose("sample", [f"run={run_dir}", "format=npz", f"num={NUM}",
                                              f"seed={SEED}", f"out={tmp_path / 'sample.npz'}"]))
    expected = np.load(reference)

    outside = tmp_path / "elsewhere"
    outside.mkdir()
    args = json.dumps([str(written["savedmodel"]), str(written["tflite"]), str(written["keras"]),
                       100, 10, NUM, SEED])
    (outside / "caller.py").write_text(CALLER)
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": _path_without_ganctl(),
           "TF_CPP_MIN_LOG_LEVEL": "3", "KERAS_BACKEND": "tensorflow", "HOME": str(tmp_path)}
    called = subprocess.run([sys.executable, "-S", "caller.py", args, str(outside / "out.npz")],
                            cwd=outside, env=env, capture_output=True, text=True, timeout=300)
    assert called.returncode == 0, called.stderr[-3000:]
    got = np.load(outside / "out.npz")
    assert (got["labels"] == expected["labels"]).all()
    assert -1.0 <= got["float_min"] and got["float_max"] <= 1.0
    for fmt in ("savedmodel", "tflite", "keras"):
        images = got[fmt]
        assert images.dtype == np.uint8 and images.shape == (NUM, 28, 28, 1), fmt
        difference = np.abs(images[..., 0].astype(int) - expected["images"].astype(int))
        # Float tolerance: a different kernel may round a pixel lying on .5 the other way.
        assert difference.max() <= 1 and (difference > 0).mean() < 1e-3, (fmt, difference.max())

    from ganctl.commands.report import run as report_run

    report_run(compose("report", [f"run={run_dir}"]))   # lists what was exported
    page = (run_dir / "report.html").read_text()
    for fmt, path in written.items():
        assert f"<td>export/{path.name}</td><td>{fmt}</td>" in page


@pytest.mark.parametrize("args, message", [
    (["format=onnx"], r"format=onnx is not an export format\. Formats: savedmodel .*tflite .*keras"),
    (["format=keras", "out=gen.h5"], r"out=gen\.h5: format=keras writes a \.keras file.*gen\.keras"),
    (["format=tflite", "out=EXISTING"], r"out=\S+ already exists; ganctl export never overwrites"),
    (["checkpoint=latest"], r"checkpoint=latest is not a checkpoint: give a step number"),
])
def test_bad_export_input_is_one_paragraph_and_writes_nothing(tmp_path, args, message):
    # Every one of these is refused before a checkpoint is read: a run's config is enough.
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.yaml").write_text("dataset: {_target_: ganctl.datasets.mnist.MNIST}\n"
                                         "model: {}\ntrain: {steps: 2}\n")
    existing = tmp_path / "gen.tflite"
    existing.write_bytes(b"keep me")
    args = [a.replace("EXISTING", str(existing)) for a in args]
    before = sorted(p.name for p in (run_dir / "export").iterdir()) if (run_dir / "export").is_dir() else []
    result = ganctl("export", f"run={run_dir}", *args, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    error = " ".join(result.stderr[result.stderr.index("ganctl: error: "):].split())
    assert "Traceback" not in result.stderr and re.search(message, error), result.stderr
    assert existing.read_bytes() == b"keep me"
    after = sorted(p.name for p in (run_dir / "export").iterdir()) if (run_dir / "export").is_dir() else []
    assert after == before


def test_export_of_a_folder_that_is_not_a_run_names_it(tmp_path):
    result = ganctl("export", f"run={tmp_path}", cwd=tmp_path)
    assert result.returncode == 2
    assert "is not a ganctl run: it has no config.yaml" in " ".join(result.stderr.split())


def test_export_help_and_the_command_list_need_no_tensorflow(tmp_path):
    listing = subprocess.run([sys.executable, "-m", "ganctl", "--help"], capture_output=True,
                             text=True, cwd=tmp_path)
    assert re.search(r"^\s+export\s+ship the generator\s+ganctl export run=", listing.stdout, re.M)
    result = subprocess.run([sys.executable, "-X", "importtime", "-m", "ganctl", "export", "--help"],
                            capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "ganctl export" in result.stdout and re.search(
        r"format\s+one of: savedmodel, tflite, keras", result.stdout)
    imported = {line.split("|")[-1].strip() for line in result.stderr.splitlines()}
    assert not any(m.startswith(("tensorflow", "keras")) for m in imported)
