"""The README's promise, end to end: `ganctl train dataset=ring` (and grid), as a user types it,
learns every mode, measured by `ganctl eval metrics=[modes]`. Slow: real training runs."""
from __future__ import annotations

import json

import pytest

from tests.helpers import ganctl

# dataset: (modes, least high-quality share) the README's table promises for its default.
TARGETS = {"ring": (8, 0.90), "grid": (25, 0.90)}


@pytest.mark.slow
@pytest.mark.parametrize("dataset", sorted(TARGETS))
def test_the_default_of_a_2d_dataset_covers_every_mode(dataset, tmp_path):
    run = tmp_path / "run"
    trained = ganctl("train", f"dataset={dataset}", "train.progress=false",
                     f"hydra.run.dir={run}", cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr
    assert f"recipe: {dataset}_mlp" in (run / "config.yaml").read_text()
    scored = ganctl("eval", f"run={run}", "metrics=[modes]", cwd=tmp_path)
    assert scored.returncode == 0, scored.stderr
    metrics = json.loads((run / "eval" / "metrics.json").read_text())["metrics"]
    modes, share = TARGETS[dataset]
    assert metrics["modes_covered"] == modes and metrics["high_quality"] >= share, metrics
