"""The README's promise, end to end: `ganctl train dataset=ring` as a user types it learns every
mode, and the grid's recipe is on its way there, measured by `ganctl eval metrics=[modes]`.
Slow: real training runs (ring about 50 s, grid about 100 s on a shared 2-core CPU)."""
from __future__ import annotations

import json

import pytest

from tests.helpers import ganctl

# dataset: (overrides after the command as typed, least modes covered, least high-quality share).
# ring: its default exactly as typed, held to the README's promise (8/8 modes, >= 90%).
# grid: its default runs 15,000 steps (4-8 min), too long for the suite, so it runs the recipe's
# first 5,000 steps, measured at 25/25 modes and 61.5 / 61.5 / 56.0% high quality (seeds 0 / 1 /
# 2; the share keeps rising to 94-95% at 15,000). Without packing 5,000 steps covered 19/25
# (README), so 22 still catches a recipe that lost PacGAN's packing; 45% leaves room for
# another CPU's rounding while a G that scatters samples between the modes still fails.
TARGETS = {"ring": ([], 8, 0.90), "grid": (["train.steps=5000"], 22, 0.45)}


@pytest.mark.slow
@pytest.mark.parametrize("dataset", sorted(TARGETS))
def test_the_default_of_a_2d_dataset_covers_every_mode(dataset, tmp_path):
    overrides, modes, share = TARGETS[dataset]
    run = tmp_path / "run"
    trained = ganctl("train", f"dataset={dataset}", *overrides, "train.progress=false",
                     f"hydra.run.dir={run}", cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr
    assert f"recipe: {dataset}_mlp" in (run / "config.yaml").read_text()
    scored = ganctl("eval", f"run={run}", "metrics=[modes]", cwd=tmp_path)
    assert scored.returncode == 0, scored.stderr
    metrics = json.loads((run / "eval" / "metrics.json").read_text())["metrics"]
    assert metrics["modes_covered"] >= modes and metrics["high_quality"] >= share, metrics
