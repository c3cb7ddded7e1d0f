"""Snapshots of a translation run: a fixed batch of test inputs, each row input | output |
target, so grids are comparable across steps; CycleGAN's rows go A -> B -> A, then
B -> A -> B."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ganctl.core.translation import comparison_rows, cycle_rows
from ganctl.images import image_grid
from ganctl.training.tb_summaries import write_image


class TranslationSnapshots:
    """The same call signature as the loop's noise-grid snapshots; only the chief writes."""

    def __init__(self, cfg, dataset, state, folder: Path, metrics):
        self.state, self.folder, self.metrics = state, folder, metrics
        # Fewer rows than the noise grid's images: each row holds three.
        rows = max(1, min(cfg.train.sample_grid, 8))
        self.inputs, self.targets = (dataset.pairs("test", limit=rows) if metrics is not None
                                     else (None, None))

    def reals(self, batch, path: Path) -> None:
        """The first training batch as augmented: input | target rows."""
        a, b = batch[0][:8], batch[1][:8]
        path.parent.mkdir(parents=True, exist_ok=True)
        image_grid(np.stack([a, b], 1).reshape(-1, *a.shape[1:]), columns=2).save(path)

    def __call__(self, at_step: int) -> None:
        if self.metrics is None:
            return
        path = self.folder / f"step_{at_step:06d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        networks, averages = self.state.networks, self.state.averages
        if "generator_ba" in networks:
            ab, ba = (averages.get(name, networks[name]) for name in ("generator", "generator_ba"))
            rows = cycle_rows(ab, ba, self.inputs, self.targets)
            caption = "test A -> B -> A rows, then B -> A -> B rows (EMA generators if kept)"
        else:
            rows = comparison_rows(self.state.sampler, self.inputs, self.targets)
            caption = "test inputs | outputs | targets (EMA G if kept)"
        image_grid(rows, columns=3).save(path)
        write_image(self.metrics.writer, "samples", path, at_step, caption)
