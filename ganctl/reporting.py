"""report.html: one self-contained page per run or sweep, to look at and to pass on.

Everything the page shows is inside the file: plots are matplotlib PNGs (Agg), images are data:
URIs, and a Content-Security-Policy allows nothing else, so the page reads the same from a disk,
a mail attachment or a shared drive and no request ever leaves it. No TensorFlow here: a report
of a run still training takes a second or two and never touches its checkpoints.
"""
from __future__ import annotations

import base64
import datetime
import fcntl
import hashlib
import html
import io
import json
import logging
import math
import os
from pathlib import Path

from omegaconf import OmegaConf

from ganctl.errors import UserError
from ganctl import rundir

log = logging.getLogger("ganctl")

MAX_SNAPSHOTS = 40                  # grids embedded per run; evenly spaced, last one always in
MAX_GRID_BYTES = 3_000_000          # ...and about this many bytes of them
# Figures of metrics.jsonl that are not losses; everything else numeric is plotted as a loss.
_NOT_LOSSES = {"step", "d_real", "d_fake", "images_per_s", "images_seen", "wall_s"}

_STYLE = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:#222;background:#f6f7f9}
header{background:#263238;color:#fff;padding:14px 28px}
header h1{font-size:20px;margin:0 0 4px;overflow-wrap:anywhere}
header p{margin:0;color:#cfd8dc;word-break:break-all}
main{padding:8px 28px 40px;max-width:1500px}
section{background:#fff;border:1px solid #dde1e6;border-radius:6px;padding:10px 18px 14px;margin:14px 0}
h2{font-size:16px;margin:4px 0 10px}
table{border-collapse:collapse;font-size:13px}
th,td{border-bottom:1px solid #e3e6ea;padding:3px 10px;text-align:left;vertical-align:top;
overflow-wrap:break-word}
th{background:#f0f2f5;white-space:nowrap}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.facts td:first-child{color:#555}
.plots{display:flex;flex-wrap:wrap;gap:8px}
.plots img{width:560px;max-width:100%}
.pixels{image-rendering:pixelated}
.grid{width:384px;max-width:100%;border:1px solid #ccc;background:#fff}
.pair{display:flex;flex-wrap:wrap;gap:24px;align-items:flex-start}
.frames img{display:none}
.frames img.shown{display:block}
.slider{width:384px;max-width:100%}
.strip{display:flex;flex-wrap:wrap;gap:14px}
.strip figure{margin:0;width:260px}
.strip img{width:256px}
figcaption{font-size:12px;color:#444;word-break:break-all}
code{word-break:break-word;font-size:12px}
pre{background:#f6f8fa;border:1px solid #e3e6ea;padding:8px;overflow:auto;max-height:420px;font-size:12px}
pre.log{white-space:pre-wrap;word-break:break-word}
.warn{color:#8a4b00}
.ok{color:#1b5e20}.bad{color:#b71c1c}.muted{color:#777}
"""

# The snapshot slider: shows one grid at a time. Without scripts the newest grid is shown.
_SCRIPT = """
document.querySelectorAll('.frames').forEach(function (box) {
  var frames = box.querySelectorAll('img'), slider = box.parentNode.querySelector('.slider'),
      label = box.parentNode.querySelector('.step');
  if (!slider) return;
  slider.addEventListener('input', function () {
    frames.forEach(function (f, i) { f.classList.toggle('shown', i == slider.value); });
    label.textContent = frames[slider.value].dataset.step;
  });
});
"""


def _csp() -> str:
    """Images only from data: URIs, this page's one style block and one script, nothing else."""
    def digest(text):
        return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"

    return (f"default-src 'none'; img-src data:; style-src {digest(_STYLE)}; "
            f"script-src {digest(_SCRIPT)}; base-uri 'none'; form-action 'none'")


# --- Reading a run -------------------------------------------------------------------------------

def read_metrics(run_dir: Path) -> tuple[list[dict], list[dict]]:
    """(training rows, evaluation rows) of metrics.jsonl, one per step, sorted by step.

    A resumed or rolled-back run logs some steps twice; the later line is the one that stands.
    A line still being written (a run in progress) is skipped.
    """
    path = run_dir / rundir.METRICS_FILE
    train, evals = {}, {}
    if path.is_file():
        for line in path.read_text(errors="replace").splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            if not isinstance(row, dict) or not isinstance(row.get("step"), int):
                continue
            target = evals if any(k.startswith("eval/") for k in row) else train
            target[row["step"]] = row
    return [train[s] for s in sorted(train)], [evals[s] for s in sorted(evals)]


def snapshots(run_dir: Path) -> list[tuple[int, Path]]:
    """(step, path) of the training snapshot grids, oldest first."""
    found = []
    for path in (run_dir / rundir.SAMPLES_DIR).glob("step_*.png"):
        digits = path.stem[len("step_"):]
        if digits.isdigit():
            found.append((int(digits), path))
    return sorted(found)


def training_status(run_dir: Path, steps_done: int, steps_total: int | None) -> str:
    """What a reader should know first: finished, still training, or stopped early."""
    status_file = run_dir / "status.json"   # a sweep job's outcome, written by the CLI
    if status_file.is_file():
        try:
            status = json.loads(status_file.read_text())
            if status.get("status") != "ok":
                return f"{status.get('status')}: {(status.get('error') or '').strip()}".strip(": ")
        except (OSError, json.JSONDecodeError):
            pass
    if _being_trained(run_dir):
        return f"training (step {steps_done} of {steps_total})"
    if steps_total is not None and steps_done >= steps_total:
        return "finished"
    if EARLY_STOP in _log_text(run_dir):
        return f"finished early at step {steps_done} of {steps_total} (train.patience)"
    return f"stopped at step {steps_done} of {steps_total}; continue with: ganctl train resume={run_dir}"


def _being_trained(run_dir: Path) -> bool:
    """`ganctl train` holds an exclusive lock on the run folder while it trains.

    Linux lists every lock in /proc/locks, so a report only reads; elsewhere it tries the lock
    for an instant (a `ganctl train resume=` starting in that instant would be refused)."""
    try:
        st = os.stat(run_dir)
        held = Path("/proc/locks").read_text()
    except OSError:
        return _lock_taken(run_dir)
    ident = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    return any(len(f) > 5 and f[1] == "FLOCK" and f[5] == ident
               for f in (line.split() for line in held.splitlines()))


def _lock_taken(run_dir: Path) -> bool:
    try:
        fd = os.open(run_dir, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def read_best(run_dir: Path) -> dict | None:
    """best.json of train.eval_every (metric, value, step), or None."""
    path = run_dir / rundir.CHECKPOINT_DIR / rundir.BEST_DIR / rundir.BEST_FILE
    try:
        return json.loads(path.read_text()) if path.is_file() else None
    except (OSError, json.JSONDecodeError):
        return None


def _eval_result(run_dir: Path) -> dict | None:
    """`ganctl eval run=`'s saved result, if there is one."""
    path = run_dir / "eval" / "metrics.json"
    try:
        return json.loads(path.read_text()) if path.is_file() else None
    except (OSError, json.JSONDecodeError):
        return None


def _exports(run_dir: Path) -> list[dict]:
    """The final generator.keras plus every `ganctl export` recorded in export/exports.jsonl."""
    rows = []
    final = run_dir / rundir.GENERATOR_EXPORT
    if final.is_file():
        rows.append({"path": str(final), "format": "keras", "step": "final",
                     "note": "written at the end of training (EMA G if kept)"})
    log_file = run_dir / rundir.EXPORT_DIR / rundir.EXPORT_LOG
    if log_file.is_file():
        for line in log_file.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    for row in rows:
        path = Path(row["path"])
        row["size"] = _size(path) if path.exists() else None
    return rows


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def _checkpoints(run_dir: Path) -> list[tuple[str, int, float]]:
    """(name, bytes, mtime) of each complete checkpoint (its index is written last)."""
    found = []
    for sub in (run_dir / rundir.CHECKPOINT_DIR, run_dir / rundir.CHECKPOINT_DIR / rundir.BEST_DIR):
        for index in sub.glob("ckpt-*.index"):
            stem = index.name[:-len(".index")]
            if not stem[len("ckpt-"):].isdigit():
                continue
            files = [index, *sub.glob(stem + ".data-*")]
            name = f"{rundir.BEST_DIR}/{stem}" if sub.name == rundir.BEST_DIR else stem
            found.append((name, sum(f.stat().st_size for f in files), index.stat().st_mtime))
    return sorted(found, key=lambda c: (c[0].startswith(rundir.BEST_DIR), int(c[0].split("-")[-1])))


def _warnings(run_dir: Path, limit: int = 20) -> list[str]:
    """WARNING and ERROR lines of train.log (NaN rollbacks, skipped files, damaged checkpoints)."""
    lines = [ln for ln in _log_text(run_dir).splitlines() if "][WARNING]" in ln or "][ERROR]" in ln]
    return lines[-limit:]


EARLY_STOP = "stopping early at step"   # training/loop.py's line when train.patience ran out


def _log_text(run_dir: Path) -> str:
    path = run_dir / rundir.LOG_FILE
    return path.read_text(errors="replace") if path.is_file() else ""


def _load_config(run_dir: Path):
    try:
        return rundir.load_run_config(run_dir)
    except UserError:
        return None


# --- Plots ---------------------------------------------------------------------------------------

def _figure(title: str, xlabel: str = "step"):
    from matplotlib.figure import Figure   # no pyplot: no global state, no GUI backend

    figure = Figure(figsize=(5.6, 3.0), dpi=100)
    # Fixed margins: matplotlib's constrained layout would double the time of each plot.
    figure.subplots_adjust(left=0.13, right=0.97, top=0.9, bottom=0.16)
    axes = figure.add_subplot()
    axes.set_title(title, fontsize=11)
    axes.set_xlabel(xlabel)
    axes.grid(alpha=0.3)
    axes.xaxis.get_major_locator().set_params(integer=True)   # steps: no 12.5
    return figure, axes


def _png(figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return _data_uri(buffer.getvalue())


def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode()


def _series(rows: list[dict], key: str) -> tuple[list[int], list[float]]:
    points = [(r["step"], r[key]) for r in rows if isinstance(r.get(key), (int, float))]
    return [p[0] for p in points], [float(p[1]) for p in points]


def _loss_keys(rows: list[dict]) -> list[str]:
    keys = dict.fromkeys(k for r in rows for k, v in r.items()
                         if k not in _NOT_LOSSES and isinstance(v, (int, float)))
    # A penalty that is off (gp: 0 at every step) is only clutter.
    return [k for k in keys if any(r.get(k) not in (0, 0.0, None) for r in rows)]


def run_plots(rows: list[dict], eval_rows: list[dict], best: dict | None, loss_name: str) -> list:
    """(title, data URI) of each training plot, in reading order."""
    plots = []
    if rows:
        figure, axes = _figure("losses")
        for key in _loss_keys(rows):
            axes.plot(*_series(rows, key), label=key, lw=1.2)
        axes.legend(fontsize=9)
        plots.append(("losses", _png(figure)))
        probabilities = loss_name in ("NonSaturating", "Minimax")
        figure, axes = _figure("D(x) and D(G(z))" + (" (probabilities)" if probabilities
                                                     else " (raw critic values)"))
        axes.plot(*_series(rows, "d_real"), label="D(x), real", lw=1.2)
        axes.plot(*_series(rows, "d_fake"), label="D(G(z)), generated", lw=1.2)
        if probabilities:
            axes.set_ylim(-0.02, 1.02)
        axes.legend(fontsize=9)
        plots.append(("D(x) and D(G(z))", _png(figure)))
        # The first logged interval includes compiling the step: leave it out of the speed plot.
        steps, speed = _series(rows[1:] if len(rows) > 2 else rows, "images_per_s")
        figure, axes = _figure("training speed")
        axes.plot(steps, speed, lw=1.2, color="#555")
        axes.set_ylabel("images / s")
        axes.set_ylim(bottom=0)
        plots.append(("training speed", _png(figure)))
    for key in dict.fromkeys(k for r in eval_rows for k in r if k.startswith("eval/")):
        figure, axes = _figure(f"{key} (in-training evaluation)")
        steps, values = _series(eval_rows, key)
        axes.plot(steps, values, marker="o", lw=1.2)
        if best and key == f"eval/{best['metric']}":
            axes.plot([best["step"]], [best["value"]], marker="*", markersize=16, color="#d32f2f",
                      linestyle="none", label=f"best: step {best['step']} (checkpoints/best)")
            axes.legend(fontsize=9)
        plots.append((key, _png(figure)))
    return plots


# --- HTML ----------------------------------------------------------------------------------------

def _e(value) -> str:
    return html.escape(str(value), quote=True)


def _page(title: str, subtitle: str, sections: list[str]) -> str:
    written = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">\n'
            f'<meta http-equiv="Content-Security-Policy" content="{_csp()}">\n'
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{_e(title)}</title>\n<style>{_STYLE}</style></head>\n<body>\n"
            f"<header><h1>{_e(title)}</h1><p>{_e(subtitle)}</p></header>\n<main>\n"
            + "\n".join(s for s in sections if s)
            + f'\n<p class="muted">written by ganctl report, {_e(written)}</p>\n</main>\n'
            f"<script>{_SCRIPT}</script>\n</body></html>\n")


def _relative(path: Path, folder: Path) -> str:
    try:
        return str(path.resolve().relative_to(folder.resolve()))
    except ValueError:
        return str(path)


def _section(title: str, body: str, anchor: str = "") -> str:
    return f'<section id="{_e(anchor)}"><h2>{_e(title)}</h2>\n{body}\n</section>' if anchor else \
        f"<section><h2>{_e(title)}</h2>\n{body}\n</section>"


def _table(header: list[str], rows: list[list], numeric: set[int] = frozenset(),
           cls: str = "") -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(
        f'<td class="num">{cell}</td>' if i in numeric else f"<td>{cell}</td>"
        for i, cell in enumerate(row)) + "</tr>" for row in rows)
    return f'<table class="{cls}"><tr>{head}</tr>{body}</table>' if header else \
        f'<table class="{cls}">{body}</table>'


def _number(value) -> str:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4g}"
    return _e(value)


def _bytes(size: int | None) -> str:
    if size is None:
        return '<span class="bad">missing</span>'
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return str(size)


def _duration(seconds) -> str:
    if not isinstance(seconds, (int, float)):
        return ""
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m" if hours else f"{minutes}m {secs:02d}s" if minutes else f"{secs}s"


def _image(path: Path, alt: str, cls: str = "grid pixels", extra: str = "") -> str:
    return f'<img class="{cls}" alt="{_e(alt)}" {extra}src="{_data_uri(path.read_bytes())}">'


def _snapshot_section(run_dir: Path) -> str:
    shots = snapshots(run_dir)
    reals = run_dir / rundir.REALS_FILE
    if not shots and not reals.is_file():
        return ""
    shown = shots
    # At most MAX_SNAPSHOTS grids and about MAX_GRID_BYTES of them (colour grids are large), so
    # the page stays small enough to mail; evenly spaced, always ending with the newest.
    average = sum(p.stat().st_size for _, p in shots) / max(len(shots), 1)
    limit = max(8, min(MAX_SNAPSHOTS, int(MAX_GRID_BYTES / max(average, 1))))
    if len(shots) > limit:
        picks = {round(i * (len(shots) - 1) / (limit - 1)) for i in range(limit)}
        shown = [shots[i] for i in sorted(picks)]
    parts = ['<div class="pair">']
    if shown:
        last = len(shown) - 1
        frames = "".join(_image(path, f"samples at step {step}",
                                cls="grid pixels" + (" shown" if i == last else ""),
                                extra=f'data-step="step {step}" ')
                         for i, (step, path) in enumerate(shown))
        note = (f" ({len(shown)} of {len(shots)} snapshots, evenly spaced)"
                if len(shown) < len(shots) else "")
        parts.append(f'<div><div class="frames">{frames}</div>'
                     f'<input class="slider" type="range" min="0" max="{last}" value="{last}" '
                     f'aria-label="snapshot">'
                     f'<div>generated, fixed noise: <b class="step">step {shown[-1][0]}</b>'
                     f'{_e(note)}</div></div>')
    if reals.is_file():
        parts.append(f"<div>{_image(reals, 'training data')}<div>real training data</div></div>")
    parts.append("</div>")
    return _section("Samples (drag the slider to step through training)", "".join(parts), "samples")


def build_run_report(run_dir: Path, status: str | None = None) -> str:
    """The HTML of one run's report. status: how training ended, when the caller knows."""
    cfg = _load_config(run_dir)
    rows, eval_rows = read_metrics(run_dir)
    best = read_best(run_dir)
    plain = OmegaConf.to_container(cfg, resolve=False) if cfg is not None else {}
    train_cfg = plain.get("train", {})
    steps_total = train_cfg.get("steps")
    steps_done = rows[-1]["step"] if rows else 0
    status = status or training_status(run_dir, steps_done, steps_total)
    choices = _choices(run_dir)
    dataset = choices.get("dataset") or _target_name(plain.get("dataset"))
    model = choices.get("model") or _target_name((plain.get("model") or {}).get("generator"))
    loss = str((plain.get("loss") or {}).get("_target_", "?")).rsplit(".", 1)[-1]
    loss_choice = choices.get("loss") or loss
    last = rows[-1] if rows else {}

    status_class = "ok" if status == "finished" else "warn" if status.startswith("training") else "bad"
    facts = [("status", f'<span class="{status_class}">{_e(status)}</span>'),
             ("dataset / model / loss", _e(f"{dataset} / {model} / {loss_choice}")),
             ("steps", _e(f"{steps_done} of {steps_total}")),
             ("batch size", _e(train_cfg.get("batch_size", "?"))),
             ("images seen", _e(f"{last.get('images_seen', 0):,}")),
             ("training time", _e(_duration(last.get("wall_s")))),
             ("last d_loss / g_loss", _e(" / ".join(_number(last.get(k)) for k in ("d_loss", "g_loss")))),
             ("seed", _e(plain.get("seed", "?")))]
    if best:
        facts.append(("best in-training evaluation",
                      _e(f"{best['metric']} {best['value']:.4g} at step {best['step']} "
                         "(checkpoints/best/; ganctl sample checkpoint=best)")))
    sections = [_section("Summary", _table([], [[k, v] for k, v in facts], cls="facts"))]

    warnings = _warnings(run_dir)
    if warnings:
        sections.append(_section("Warnings from train.log",
                                 '<pre class="log">' + _e("\n".join(warnings)) + "</pre>", "warnings"))
    plots = run_plots(rows, eval_rows, best, loss)
    if plots:
        sections.append(_section("Training curves", '<div class="plots">' + "".join(
            f'<img alt="{_e(title)}" src="{uri}">' for title, uri in plots) + "</div>", "curves"))
    else:
        sections.append(_section("Training curves", '<p class="muted">no step logged yet '
                                 "(metrics.jsonl is empty).</p>"))
    sections.append(_snapshot_section(run_dir))
    sections.append(_eval_section(_eval_result(run_dir)))
    sections.append(_files_section(run_dir))
    config_text = (run_dir / rundir.CONFIG_FILE).read_text(errors="replace") if cfg is not None else ""
    sections.append(_section("Resolved config (config.yaml)", f"<pre>{_e(config_text)}</pre>", "config"))
    return _page(f"ganctl run {run_dir.name}", str(run_dir), sections)


def _choices(run_dir: Path) -> dict:
    """The config choices the run was composed from (dataset=ring, ...), from Hydra's record."""
    try:
        choices = OmegaConf.load(run_dir / ".hydra" / "hydra.yaml").hydra.runtime.choices
        return {k: str(v) for k, v in choices.items() if isinstance(v, str)}
    except Exception:  # noqa: BLE001  no record (resumed elsewhere, copied run): use the targets
        return {}


def _target_name(node) -> str:
    target = str((node or {}).get("_target_", "?"))
    parts = target.split(".")
    return parts[2] if len(parts) > 2 and parts[0] == "ganctl" else parts[-1]


def _eval_section(result: dict | None) -> str:
    if not result:
        return ""
    rows = [[_e(k), _number(v)] for k, v in result.get("metrics", {}).items()]
    features = result.get("features", {})
    note = (f"{result.get('num_fake')} generated vs {result.get('num_real')} real samples, "
            f"{features.get('name', '?')} features, checkpoint step {result.get('checkpoint_step')}"
            f" ({'EMA' if result.get('ema') else 'raw'} G), seed {result.get('seed')}")
    notes = "".join(f'<p class="warn">note: {_e(n)}</p>' for n in result.get("notes", []))
    return _section("Evaluation (ganctl eval)", _table(["metric", "value"], rows, {1})
                    + f"<p>{_e(note)}</p>{notes}", "eval")


def _files_section(run_dir: Path) -> str:
    checkpoints = _checkpoints(run_dir)
    ckpt_rows = [[_e(name), _bytes(size),
                  _e(datetime.datetime.fromtimestamp(mtime).strftime("%Y-%m-%d %H:%M:%S"))]
                 for name, size, mtime in checkpoints]
    body = ("<h3>Checkpoints kept</h3>" + (_table(["checkpoint", "size", "written"], ckpt_rows, {1})
                                           if ckpt_rows else '<p class="muted">none yet</p>'))
    exports = _exports(run_dir)
    export_rows = [[_e(_relative(Path(r["path"]), run_dir)), _e(r.get("format", "")),
                    _e(r.get("step", "")), _e(r.get("note") or r.get("signature", "")),
                    _bytes(r["size"])] for r in exports]
    body += "<h3>Exported generators</h3>" + (
        _table(["file (in the run folder unless a full path)", "format", "step", "what", "size"],
               export_rows, {4})
        if export_rows else '<p class="muted">none yet (ganctl export run=...)</p>')
    return _section("Files", body, "files")


# --- Sweeps --------------------------------------------------------------------------------------

def check_sweep_dir(path: str) -> Path:
    sweep_dir = Path(path).expanduser()
    if not sweep_dir.is_dir() or not (sweep_dir / "multirun.yaml").is_file():
        raise UserError(f"sweep={path} is not a multirun directory (it has no multirun.yaml); "
                        "give the folder `ganctl train -m` printed, e.g. "
                        "outputs/multirun/<date>/<time>. For one run use run=<run dir>.")
    return sweep_dir.resolve()


def stale_job_reports(sweep_dir: Path) -> list[Path]:
    """The sweep's jobs whose report.html is missing or older than their metrics.jsonl."""
    stale = []
    for job in sorted(p for p in sweep_dir.iterdir() if (p / rundir.CONFIG_FILE).is_file()):
        report, metrics = job / rundir.REPORT_FILE, job / rundir.METRICS_FILE
        if not report.is_file() or (metrics.is_file()
                                    and metrics.stat().st_mtime > report.stat().st_mtime):
            stale.append(job)
    return stale


def sweep_jobs(sweep_dir: Path) -> list[dict]:
    """One dict per job: name, overrides, status, metrics, wall time, rows; sorted like
    `ganctl eval sweep=` (by the first metric, best first; jobs without metrics last)."""
    from ganctl.evaluation.runs import sort_value
    from ganctl.evaluation import LOWER_IS_BETTER

    jobs = []
    # A job that failed before training (bad data, a model that cannot take it) has only its
    # status file: it is listed too, with why it failed.
    for job in sorted(p for p in sweep_dir.iterdir()
                      if (p / rundir.CONFIG_FILE).is_file() or (p / "status.json").is_file()):
        rows, eval_rows = read_metrics(job)
        cfg = _load_config(job)
        steps_total = (cfg.train.get("steps") if cfg is not None and "train" in cfg
                       else _hydra_task_steps(job))
        overrides = job / ".hydra" / "overrides.yaml"
        try:
            given = [str(o) for o in OmegaConf.load(overrides)] if overrides.is_file() else []
        except Exception:  # noqa: BLE001  a damaged overrides file only loses the label
            given = []
        evaluated = _eval_result(job)
        if evaluated:
            metrics, source = dict(evaluated.get("metrics", {})), "ganctl eval"
        elif eval_rows:
            metrics = {k[len("eval/"):]: v for k, v in eval_rows[-1].items() if k.startswith("eval/")}
            source = f"in-training, step {eval_rows[-1]['step']}"
        else:
            metrics, source = {}, ""
        shots = snapshots(job)
        jobs.append({"name": job.name, "dir": job, "given": given, "metrics": metrics,
                     "source": source, "rows": rows, "eval_rows": eval_rows,
                     "step": rows[-1]["step"] if rows else 0, "steps_total": steps_total,
                     "status": training_status(job, rows[-1]["step"] if rows else 0, steps_total),
                     "wall_s": rows[-1].get("wall_s") if rows else None,
                     "last_grid": shots[-1] if shots else None})
    # Name each job by what differs between the jobs; what they share is said once.
    shared = set.intersection(*(set(j["given"]) for j in jobs)) if len(jobs) > 1 else set()
    for job in jobs:
        job["overrides"] = " ".join(o for o in job["given"] if o not in shared) or job["name"]
        job["shared"] = [o for o in job["given"] if o in shared]
        job["number"] = job["name"].split("_", 1)[0]
    metric_names = list(dict.fromkeys(k for j in jobs for k in j["metrics"]))
    sort_by = metric_names[0] if metric_names else None
    if sort_by:
        jobs.sort(key=lambda j: sort_value(j["metrics"].get(sort_by), sort_by in LOWER_IS_BETTER))
    return jobs


def _hydra_task_steps(job: Path):
    """train.steps of a job that never saved its config, from Hydra's record of it."""
    try:
        return OmegaConf.load(job / ".hydra" / "config.yaml").train.steps
    except Exception:  # noqa: BLE001  unknown: the table shows None
        return None


def build_sweep_report(sweep_dir: Path) -> str:
    jobs = sweep_jobs(sweep_dir)
    metric_names = list(dict.fromkeys(k for j in jobs for k in j["metrics"]))
    header = ["#", "job", "overrides", "status", *metric_names, "metrics from", "step", "time"]
    table_rows = []
    for i, job in enumerate(jobs, 1):
        link = (f'<a href="{_e(job["name"])}/{rundir.REPORT_FILE}" title="{_e(job["name"])}">'
                f'{_e(job["number"])}</a>' if (job["dir"] / rundir.REPORT_FILE).is_file()
                else _e(job["number"]))
        status = job["status"]
        cls = "ok" if status in ("finished", "ok") else "warn" if status.startswith("training") else "bad"
        table_rows.append([str(i), link, _e(job["overrides"]),
                           f'<span class="{cls}">{_e(status.split(";")[0][:300])}</span>',
                           *[_number(job["metrics"].get(m, "")) for m in metric_names],
                           _e(job["source"]), _e(f"{job['step']} of {job['steps_total']}"),
                           _e(_duration(job["wall_s"]))])
    numeric = set(range(4, 4 + len(metric_names))) | {len(header) - 1}
    sort_note = (f"sorted by {metric_names[0]}, best first" if metric_names
                 else "no job has evaluation metrics yet (train.eval_every or ganctl eval sweep=)")
    shared = (f'<p>every job: <code>{_e(" ".join(jobs[0]["shared"]))}</code>; the job number '
              "links to its own report.</p>" if jobs and jobs[0]["shared"] else "")
    sections = [_section(f"Jobs ({len(jobs)}; {sort_note})", shared + _table(
        header, table_rows, numeric) if jobs else '<p class="muted">no job has started yet.</p>',
        "jobs")]
    plots = _sweep_plots(jobs)
    if plots:
        sections.append(_section("Curves, all jobs (the legend numbers are the table's #)",
                                 '<div class="plots">' + "".join(
                                     f'<img alt="{_e(t)}" src="{u}">' for t, u in plots) + "</div>",
                                 "curves"))
    grids = [f'<figure>{_image(j["last_grid"][1], j["name"], cls="pixels")}'
             f'<figcaption>#{i} {_e(j["overrides"])} (step {j["last_grid"][0]})</figcaption></figure>'
             for i, j in enumerate(jobs, 1) if j["last_grid"]]
    if grids:
        sections.append(_section("Final samples, side by side", '<div class="strip">'
                                 + "".join(grids) + "</div>", "samples"))
    return _page(f"ganctl sweep {sweep_dir.parent.name}/{sweep_dir.name}", str(sweep_dir), sections)


def _sweep_plots(jobs: list[dict]) -> list:
    keys = ["d_loss", "g_loss", "d_real", "d_fake"]
    eval_keys = list(dict.fromkeys(k for j in jobs for r in j["eval_rows"] for k in r
                                   if k.startswith("eval/")))
    plots = []
    for key in keys + eval_keys:
        figure, axes = _figure(key)
        drawn = False
        for i, job in enumerate(jobs, 1):
            steps, values = _series(job["eval_rows"] if key.startswith("eval/") else job["rows"], key)
            if steps:
                axes.plot(steps, values, lw=1.1, label=f"#{i}",
                          marker="o" if key.startswith("eval/") else None, markersize=3)
                drawn = True
        if drawn:
            axes.legend(fontsize=8, ncol=max(1, math.ceil(len(jobs) / 8)))
            plots.append((key, _png(figure)))
    return plots


# --- Writing -------------------------------------------------------------------------------------

def write_report(folder: Path, status: str | None = None, sweep: bool = False) -> Path:
    """Write <folder>/report.html in one step (a reader never sees half a page)."""
    text = build_sweep_report(folder) if sweep else build_run_report(folder, status)
    out = folder / rundir.REPORT_FILE
    staged = out.with_name(out.name + ".tmp")
    try:
        staged.write_text(text, encoding="utf-8")
        os.replace(staged, out)
    finally:
        staged.unlink(missing_ok=True)   # a full disk leaves no half-written file behind
    return out


def write_report_quietly(folder: Path, status: str | None = None, sweep: bool = False) -> Path | None:
    """After training: a report that cannot be written is a warning, never a failed run."""
    try:
        return write_report(folder, status, sweep)
    except Exception as err:  # noqa: BLE001  the run itself is saved; the report is extra
        log.warning("could not write %s (%s: %s); write it later with ganctl report %s=%s",
                    folder / rundir.REPORT_FILE, type(err).__name__, err, "sweep" if sweep else "run",
                    folder)
        return None
