"""`ganctl report run=<run dir>` or `sweep=<multirun dir>`: write report.html into that folder.

Training writes the report itself when a run ends or is stopped; this command writes it on
demand, also for a run still in progress (it only reads files, never the checkpoints' locks).
"""
from __future__ import annotations

import time
from pathlib import Path

from omegaconf import DictConfig

from ganctl import rundir


def run(cfg: DictConfig, _hydra_dir: Path | None = None) -> Path:
    from ganctl.reporting import check_sweep_dir, stale_job_reports, write_report, write_report_quietly

    started = time.perf_counter()
    if cfg.sweep:
        sweep_dir = check_sweep_dir(cfg.sweep)
        for job in stale_job_reports(sweep_dir):   # so the table's links show each job as it is
            write_report_quietly(job)
        out = write_report(sweep_dir, sweep=True)
    else:
        out = write_report(rundir.check_run_dir(cfg.run))
    print(f"wrote {out}  ({out.stat().st_size / 1024:.0f} KB in {time.perf_counter() - started:.1f} s; "
          "open it in any browser, it needs no network)")
    return out
