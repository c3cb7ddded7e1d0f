"""`ganctl <command> [overrides]`: the dispatcher and the three Hydra apps.

No TensorFlow here: `ganctl --help` must stay fast. Each command's `run(cfg)` imports TF itself.
"""
from __future__ import annotations

import importlib
import json
import logging
import os
import re
import shutil
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig

from ganctl import __version__, rundir
from ganctl.config import register_configs
from ganctl.errors import (DISK_FULL_ERRNOS, Interrupted, UserError, WriteFailed, did_you_mean,
                           format_error)

log = logging.getLogger("ganctl")

USAGE = f"""\
usage: ganctl <command> [key=value ...] [hydra flags]

Train, sample and evaluate GANs (Keras 3 on TensorFlow), configured with Hydra.

commands:
  train    train a GAN            ganctl train dataset=mnist model=dcgan loss=ns
  sample   images from a run      ganctl sample run=outputs/<date>/<time> num=64
  eval     score a run            ganctl eval run=outputs/<date>/<time>
  report   an HTML page of a run  ganctl report run=outputs/<date>/<time>   (or sweep=<dir>)
  export   ship the generator     ganctl export run=outputs/<date>/<time> format=savedmodel|tflite|keras
  doctor   is the run healthy?    ganctl doctor run=outputs/<date>/<time>   (or sweep=<dir>; exit 1: act)

Each command is a Hydra app: `ganctl train --help` lists its config groups and options,
`-m` sweeps (ganctl train -m loss=ns,lsgan seed=0,1), `--cfg job` prints the composed config,
`hydra.run.dir=...` picks the run directory, `--config-dir DIR` adds your own configs.

Class-conditional: ganctl train model=cdcgan, then ganctl sample run=<run> per_class=8 (or
labels=[3,7], format=dataset out=<dir>); ganctl eval adds cas and class_match.
Several GPUs or machines: train.strategy=auto|single|mirrored|multi_worker (TF_CONFIG).

ganctl {__version__}
"""

COMMANDS = {"train": "ganctl.commands.train", "sample": "ganctl.commands.sample",
            "eval": "ganctl.commands.evaluate", "report": "ganctl.commands.report",
            "export": "ganctl.commands.export", "doctor": "ganctl.commands.doctor"}
# What a run writes before its first step; a folder holding anything else is never removed.
RUN_FILES = {rundir.CONFIG_FILE, rundir.METRICS_FILE, rundir.SAMPLES_DIR, rundir.CHECKPOINT_DIR,
             rundir.REALS_FILE, rundir.TENSORBOARD_DIR, rundir.REPORT_FILE}
_sweep_failed = False


def _job(command: str, cfg: DictConfig):
    """Run one job; a UserError becomes a paragraph, and in a sweep it never stops the other jobs."""
    hydra_cfg = HydraConfig.get()
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    run_dir = Path(hydra_cfg.runtime.output_dir)
    fresh = command == "train" and cfg.get("resume") is None
    try:
        result = importlib.import_module(COMMANDS[command]).run(cfg, run_dir)
        if multirun:
            _write_status(run_dir, "ok")
        return result
    except (UserError, KeyboardInterrupt, Exception) as caught:  # noqa: B014 - documents intent
        err = _as_user_error(caught, cfg)
        if multirun and not isinstance(err, Interrupted):
            # In a sweep sys.exit() would end every remaining job; record the failure instead.
            message = str(err) if err else f"{type(caught).__name__}: {caught}"
            log.error(format_error(message))
            _write_status(run_dir, "failed", message)
            return None
        if err is None:
            raise
        if multirun:  # a signal stops the whole sweep, as the user asked
            _write_status(run_dir, "interrupted", str(err))
        if fresh:
            # A new run that stopped on bad input before training one step holds nothing worth
            # keeping (a failure found in the first batch, evaluation or save, e.g. a bad
            # folder): remove it, as a bad command line never leaves one. A signal or a
            # divergence keeps its folder: the log says what happened.
            nothing_trained = (type(err) in (UserError, WriteFailed)
                               and rundir.newest_saved_step(run_dir) == 0)
            _remove_if_untouched(run_dir, everything=nothing_trained)
        print(format_error(str(err)), file=sys.stderr)
        if isinstance(err, Interrupted):
            _exit_now(err.exit_code)
        sys.exit(err.exit_code)


def _exit_now(code: int) -> None:
    """Exit without the interpreter's teardown. After a signal the checkpoint is already complete
    on disk (saves are atomic), and tearing down TensorFlow's data threads took seconds after
    the message had said the run was stopped."""
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    for restore in _at_exit:
        restore()
    os._exit(code)


def _as_user_error(caught: BaseException, cfg: DictConfig | None = None) -> UserError | None:
    """The one-paragraph form of what stopped a job, or None for a bug (it keeps its traceback)."""
    if isinstance(caught, UserError):
        return caught
    if isinstance(caught, KeyboardInterrupt):  # before the training loop took over SIGINT
        return Interrupted("interrupted by SIGINT (Ctrl-C).", 130)
    if isinstance(caught, OSError) and caught.errno in DISK_FULL_ERRNOS:
        return WriteFailed(f"could not write {caught.filename or 'a file'}: {caught.strerror}. The "
                           "disk may be full; free some space, then run again (or resume).")
    if isinstance(caught, OSError) and caught.filename:
        # Permissions, a vanished folder, a read-only mount: the machine's state, not a bug.
        return WriteFailed(f"could not use {caught.filename}: {caught.strerror}. Check that it "
                           "exists and that you may read and write there, or give another path; "
                           "what was saved before is intact.")
    if _out_of_memory(caught):
        return UserError(f"ran out of memory ({_first_line(caught)}). {_smaller_batch(cfg)}")
    return None


def _out_of_memory(caught: BaseException) -> bool:
    """MemoryError, or TensorFlow's ResourceExhaustedError (named, so TF need not be imported)."""
    names = {t.__name__ for t in type(caught).__mro__}
    return bool(names & {"MemoryError", "ResourceExhaustedError"}) or "OOM when allocating" in str(
        caught)[:2000]


def _first_line(caught: BaseException) -> str:
    text = str(caught).strip().splitlines()
    return (text[0][:200] if text else type(caught).__name__).rstrip(".")


def _smaller_batch(cfg: DictConfig | None) -> str:
    """What to lower, with the current value, so the advice can be typed as it stands."""
    if cfg is not None and "train" in cfg and "batch_size" in cfg.train:
        size = cfg.train.batch_size
        return (f"The batch does not fit: train.batch_size={size}; try "
                f"train.batch_size={max(1, size // 2)} (or a smaller model width).")
    if cfg is not None and "batch_size" in cfg:
        size = cfg.batch_size
        return (f"The batch does not fit: batch_size={size}; try batch_size={max(1, size // 2)}"
                + (f" or fewer samples (num={cfg.num})." if "num" in cfg else "."))
    return "Free some memory or use smaller settings, then run again."


def _write_status(run_dir: Path, status: str, error: str | None = None) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / rundir.STATUS_FILE).write_text(json.dumps({"status": status, "error": error}) + "\n")


def _remove_if_untouched(run_dir: Path, everything: bool = False) -> None:
    """Delete a run dir Hydra just made for a job that failed on bad input (with `everything`,
    also what the job wrote before its first trained step); never anything more."""
    allowed = {".hydra", rundir.LOG_FILE} | (RUN_FILES if everything else set())
    if run_dir.is_dir() and {p.name for p in run_dir.iterdir()} <= allowed:
        logging.shutdown()
        shutil.rmtree(run_dir, ignore_errors=True)
        # Hydra made outputs/<date>/ (and outputs/) for it too: remove those if now empty.
        cwd = Path.cwd().resolve()
        for parent in run_dir.resolve().parents:
            if cwd not in parent.parents:
                break
            try:
                parent.rmdir()  # fails, as it should, on a folder that holds anything
            except OSError:
                break


class SweepSummary(Callback):
    """After a multirun: one line per job, and a non-zero exit if any job failed."""

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        global _sweep_failed
        sweep_dir = Path(config.hydra.sweep.dir)
        rows = []
        for status_file in sorted(sweep_dir.glob(f"*/{rundir.STATUS_FILE}")):
            status = json.loads(status_file.read_text())
            rows.append((status_file.parent.name, status["status"], status.get("error") or ""))
        failed = [r for r in rows if r[1] != "ok"]
        print(f"\nsweep {sweep_dir}: {len(rows) - len(failed)} ok, {len(failed)} failed")
        for name, status, error in rows:
            print(f"  {status:6s} {name}" + (f"  ({error.splitlines()[0][:160]})" if error else ""))
        _sweep_failed = bool(failed)
        from ganctl.reporting import write_report_quietly

        report = write_report_quietly(sweep_dir, sweep=True)
        if report is not None:
            print(f"report: {report}")


def _hydra_app(command: str):
    @hydra.main(version_base="1.3", config_path="pkg://ganctl.conf", config_name=command)
    def app(cfg: DictConfig):
        return _job(command, cfg)

    return app


def _precheck(command: str, args: list[str]) -> list[str]:
    """Checks Hydra would only report with a traceback, and `resume=` routing into the old run."""
    if any(a.split("=", 1)[0] == "--experimental-rerun" for a in args):
        raise UserError("--experimental-rerun is not supported: it unpickles a file, and a pickle "
                        "can run any code. Continue a run with: ganctl train resume=<run dir>.")
    if command == "train" and not any(a.startswith("resume=") for a in args):
        _check_output_dirs(args)
    # A sweep job's folder is named like `0_loss=ns,seed=1`: as it stands, Hydra would read the
    # commas and '=' as override syntax, so a run folder is passed on to Hydra quoted.
    args = [f"{a.split('=', 1)[0]}={_quoted(_unquoted(a.split('=', 1)[1]))}"
            if a.split("=", 1)[0] in ("resume", "run", "sweep") else _readable(command, a) for a in args]
    if command == "train":
        resume = [_unquoted(a.split("=", 1)[1]) for a in args if a.startswith("resume=")]
        if resume:
            from ganctl.rundir import check_run_dir

            run_dir = check_run_dir(resume[-1], what="resume")
            # Log into the run being resumed; keep its original .hydra/ provenance untouched.
            args = [*args, f"hydra.run.dir={_quoted(str(run_dir))}", "hydra.output_subdir=null"]
    return args


def _readable(command: str, arg: str) -> str:
    """An override as Hydra's grammar reads it. A path it cannot read as typed (~/faces, a name
    in any non-ASCII script, spaces, brackets) is quoted for it; any other value it cannot read
    is an error that shows the quoted form to type."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    if arg.startswith("-") or "=" not in arg:
        return arg
    from ganctl.config import path_keys

    key, value = arg.split("=", 1)
    if key.lstrip("+~") in path_keys(command) and _unquoted(value).startswith("~"):
        # Hydra would make a folder named '~' for hydra.run.dir=~/runs; the shell did not expand
        # it because it follows '='.
        return f"{key}={_quoted(os.path.expanduser(_unquoted(value)))}"
    try:
        OverridesParser.create().parse_override(arg)
        return arg
    except HydraException:
        pass
    if key.lstrip("+~") in path_keys(command):
        return f"{key}={_quoted(_unquoted(value))}"
    quoted = f"{key}={_quoted(value)}"
    raise UserError(f"{arg} cannot be read: Hydra's override grammar takes characters such as ~, "
                    "spaces, quotes or letters outside ASCII only inside quotes. Type it as "
                    f"\"{quoted}\" (the outer double quotes are for the shell).")


def _quoted(value: str) -> str:
    return "'" + value.replace("'", "\\'") + "'"


def _unquoted(value: str) -> str:
    if len(value) > 1 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1].replace("\\" + value[0], value[0])
    return value


def _command_help(command: str) -> str:
    """`ganctl <command> --help`, generated from the command's schema: every option with what it
    accepts, its default and its comment in config.py, and (train) each group's choices. A new
    field or command in config.py gets its help from there, with no edit here."""
    import dataclasses
    import textwrap

    from ganctl import config
    from ganctl.metrics.registry import METRICS  # numpy only, no TensorFlow

    names = {"metrics": list(METRICS)}
    summary = next((ln.split(None, 1)[1] for ln in USAGE.splitlines()
                    if ln.startswith(f"  {command} ")), "")
    what, _, example = summary.partition("ganctl ")
    lines = [f"ganctl {command}: {what.strip()}", f"usage: ganctl {command} [key=value ...] "
             "[--cfg job] [-m]", f"example: ganctl {example.strip()}" if example else "", ""]
    schema = config.COMMAND_SCHEMAS[command]
    groups = [f.name for f in dataclasses.fields(schema) if f.name in config.GROUP_SCHEMAS]
    if groups:
        lines.append("config groups (group=choice):")
        for group in [*groups, "experiment"]:
            lines.append(f"{group}: {', '.join(config.shipped_options(group))}")
        lines.append("")
    lines.append("options (key=value):")

    def walk(node: type, prefix: str):
        docs = config.field_docs(node)
        for spec in dataclasses.fields(node):
            if spec.name.startswith("_") or spec.name == "source":
                continue
            child = (getattr(config, spec.type, None) if isinstance(spec.type, str)
                     else spec.type)
            if "schema" in spec.metadata:  # dataset: each option has its own settings
                for option_schema, options in config.dataset_options_by_schema().items():
                    lines.append(f"  {prefix}{spec.name}=" + "|".join(options) + ":")
                    walk(option_schema, f"{prefix}{spec.name}.")
                continue
            if dataclasses.is_dataclass(child):
                walk(child, f"{prefix}{spec.name}.")
                continue
            default = (spec.default_factory() if spec.default is dataclasses.MISSING
                       and spec.default_factory is not dataclasses.MISSING else spec.default)
            default = "required" if str(default) == "???" else f"default {default}"
            text = "; ".join(t for t in (config.accepted_values(spec, names),
                                         docs.get(spec.name, "")) if t)
            body = textwrap.fill(f"{text} ({default})" if text else f"({default})", 100,
                                 initial_indent=f"  {prefix + spec.name:<30} ",
                                 subsequent_indent=" " * 33)
            lines.append(body)

    walk(schema, "")
    lines += ["", "Hydra's own flags: ganctl " + command + " --hydra-help; the composed config: "
              "ganctl " + command + " [key=value ...] --cfg job."]
    return "\n".join(lines) + "\n"


def _check_output_dirs(args: list[str]) -> None:
    """Where a new run (or sweep) folder goes must be creatable, before anything is trained, and
    a named run folder must not hold another run: refused here, Hydra has not yet written to it."""
    from ganctl.rundir import check_can_write, refuse_training_over

    key = "hydra.sweep.dir" if any(a in ("-m", "--multirun") for a in args) else "hydra.run.dir"
    given = [a.split("=", 1)[1] for a in args if a.startswith(key + "=")]
    path = _unquoted(given[-1]) if given else "outputs"
    if "${" not in path:
        check_can_write(path, key)  # the default, outputs/, is in the current folder
        if given and key == "hydra.run.dir":
            refuse_training_over(os.path.expanduser(path))


# What TensorFlow's C++ side and libjpeg print on every run, with nothing a user can act on: absl's
# info/warning lines, the CUDA probe on machines without a GPU, the CPU-instructions note, and
# libjpeg's per-file complaints (ganctl counts and reports bad files itself).
_NATIVE_NOISE = re.compile(
    r"^(?:[IW]\d{4} [\d:.]+\s+\d+ \S+:\d+\] "
    r"|E\d{4} .*(?:cuInit|cuda|cuDNN|cuFFT|cuBLAS|CUDA|meta_optimizer\.cc)"
    r"|WARNING: All log messages before absl::InitializeLog"
    r"|To enable the following instructions:.*rebuild TensorFlow"
    r"|Corrupt JPEG data|Premature end of JPEG file|Invalid SOS parameters|JPEG datastream"
    r"|Warning: unknown JFIF revision|Unsupported marker type)")


def _filter_native_stderr() -> None:
    """Drop native libraries' noise from the terminal: fd 2 goes through a pipe whose reader
    forwards every other line. GANCTL_NATIVE_LOG=1 shows everything (for bug reports)."""
    if os.environ.get("GANCTL_NATIVE_LOG") == "1":
        return
    import atexit
    import threading

    try:
        sys.stderr.flush()
        terminal, (reader, writer) = os.dup(2), os.pipe()
        os.dup2(writer, 2)
        os.close(writer)
    except OSError:
        return

    def forward():
        with os.fdopen(reader, "rb") as lines:
            for line in lines:
                if not _NATIVE_NOISE.match(line.decode(errors="replace")):
                    os.write(terminal, line)

    thread = threading.Thread(target=forward, name="ganctl-stderr", daemon=True)
    thread.start()

    def restore():
        sys.stderr.flush()
        os.dup2(terminal, 2)   # closes the pipe's last writer, so the reader sees its end
        thread.join(timeout=2)

    atexit.register(restore)
    _at_exit.append(restore)


_at_exit: list = []   # what _exit_now must still do, atexit being skipped


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE, end="")
        return
    if argv[0] in ("-V", "--version"):
        print(f"ganctl {__version__}")
        return
    command, args = argv[0], argv[1:]
    if command in COMMANDS and any(a in ("-h", "--help") for a in args):
        from ganctl.config import COMMAND_SCHEMAS

        if command in COMMAND_SCHEMAS:
            print(_command_help(command), end="")
            return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    _filter_native_stderr()
    try:
        if command not in COMMANDS:
            raise UserError(f"unknown command '{command}'.{did_you_mean(command, COMMANDS, 'ganctl ')}"
                            f" Commands are: {', '.join(COMMANDS)} (ganctl --help shows an "
                            "example of each).")
        args = _precheck(command, args)
        from ganctl.validate import precheck

        register_configs()
        precheck(command, args)
    except UserError as err:
        print(format_error(str(err)), file=sys.stderr)
        sys.exit(err.exit_code)

    # Hydra reads sys.argv itself (the compose API would lose -m and --cfg), so hand it the rest.
    sys.argv = [f"ganctl-{command}", *args]
    _hydra_app(command)()
    if _sweep_failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
