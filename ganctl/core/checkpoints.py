"""Checkpoints that survive kills, full disks and damaged files.

A save writes `ckpt-<step>_temp.*`, syncs it to disk and renames the data files, then the index,
into place: the index is the commit marker, so `ckpt-<step>.index` always means a complete
checkpoint, and anything with `_temp` in its name is a save that never finished. A restore reads
every tensor back first (TF checks each one's CRC32C), so a damaged checkpoint is named and
skipped before any variable is touched. TF's `checkpoint` state file is written for other tools
but never trusted: a garbage one, or a missing index, cannot make a resume start from step 0.
"""
from __future__ import annotations

import logging
import os
import re
import shutil
from pathlib import Path

import tensorflow as tf

from ganctl.errors import UserError, WriteFailed

log = logging.getLogger("ganctl")
_FILE = re.compile(r"^ckpt-(\d+)\.(index|data-\d+-of-\d+)$")
TEMP_MARK = "_temp"  # in the names of TF's own scratch folders and of our staged saves
STATE_FILE = "checkpoint"
_STATE_LINE = re.compile(r'(model_checkpoint_path|all_model_checkpoint_paths): "[^"]*"'
                         r"|(all_model_checkpoint_timestamps|last_preserved_timestamp): [\d.e+-]+")


def rng_states(model) -> list:
    """The model's random-number states that are not weights, e.g. each Dropout's SeedGenerator.

    Keras leaves them out of `weights` and so out of a checkpoint of the model (keras issue
    19796); without them a resumed run with dropout is not bit-identical.
    """
    weights = {id(w) for w in model.weights}
    return [v.value for v in model.variables if id(v) not in weights]


class Checkpoints:
    def __init__(self, directory: Path, keep: int | None = None, added_later: tuple = (),
                 **trackables):
        """`added_later`: names of trackables that checkpoints of older ganctl versions lack; such
        a checkpoint still restores whole, and those objects keep their initial values."""
        self.directory = Path(directory)
        self.keep = keep
        self.trackables, self.added_later = trackables, added_later
        self.checkpoint = _checkpoint(trackables)

    def _checkpoint_for(self, path: str) -> tf.train.Checkpoint:
        """The checkpoint object to restore `path` through: without the added-later objects it
        lacks, so the full match still checks everything it holds."""
        if not self.added_later:
            return self.checkpoint
        saved = {name.split("/")[0] for name, _ in tf.train.list_variables(path)}
        lacking = [name for name in self.added_later if name not in saved]
        if not lacking:
            return self.checkpoint
        log.info("%s was written before ganctl saved %s: %s from the initial value", path,
                 ", ".join(lacking), "it starts" if len(lacking) == 1 else "they start")
        return _checkpoint({k: v for k, v in self.trackables.items() if k not in lacking})

    def steps(self) -> list[int]:
        """Steps with a complete checkpoint (its index, written last, and data), oldest first."""
        return sorted(s for s, kinds in self._files().items() if {"index", "data"} <= kinds)

    def save(self, step: int) -> str:
        """Write ckpt-<step> so it is either complete or ignored, then keep the newest `keep`."""
        self.directory.mkdir(parents=True, exist_ok=True)
        self._remove_temp()
        self._delete(step)
        final = str(self.directory / f"ckpt-{step}")
        staged = final + TEMP_MARK
        try:
            self.checkpoint.write(staged)
            data = [str(p) for p in self.directory.glob(f"ckpt-{step}{TEMP_MARK}.data-*")]
            for name in [*data, staged + ".index"]:
                _fsync(name)  # on disk before the rename makes it count
            for name in data:
                os.replace(name, final + name[len(staged):])
            os.replace(staged + ".index", final + ".index")  # the commit
            _fsync(self.directory)
        except (tf.errors.OpError, OSError) as err:
            self._delete(step)
            self._remove_temp()
            raise WriteFailed(self._write_failure(final, err)) from err
        if self.keep:
            kept = set(self.steps()[-self.keep:])
            for old in set(self._files()) - kept:
                self._delete(old)
        self._write_state_file()
        return final

    def restore(self, step: int | None = None, partial: bool = False) -> int | None:
        """Restore `step`, or else the newest checkpoint that reads back whole; None if none exist.

        Newer checkpoints that are incomplete or damaged are named in a warning and skipped. With
        partial=False every object of this run must match the checkpoint exactly, so a different
        width or depth fails loudly instead of loading half the weights; partial=True (sampling)
        needs only the objects given here.
        """
        complete = self.steps()
        if step is not None and step not in complete:
            raise UserError(f"checkpoint={step} does not exist in {self.directory}; "
                            f"available steps: {complete or 'none'}.")
        self._check_state_file()
        skipped = []
        files = self._files()
        for newer in sorted((s for s in files if s > max(complete, default=-1)), reverse=True):
            if step is None:
                missing = "index" if "index" not in files[newer] else "data"
                skipped.append(f"ckpt-{newer} is incomplete (its {missing} file is missing: its "
                               "save did not finish, or the file was deleted)")
        for candidate in [step] if step is not None else reversed(complete):
            path = str(self.directory / f"ckpt-{candidate}")
            damage = _damage(path)
            if damage:
                if step is not None:
                    raise UserError(f"checkpoint {path} is damaged and cannot be used: {damage}.")
                skipped.append(f"checkpoint {path} is damaged ({damage})")
                continue
            self._restore_matching(path, partial)
            for reason in skipped:
                log.warning("%s; using ckpt-%d instead.", reason, candidate)
            return candidate
        if skipped or list(self.directory.glob(f"*{TEMP_MARK}*")):
            raise UserError(
                f"{self.directory} holds no complete, readable checkpoint"
                f"{': ' + '; '.join(skipped) if skipped else ' (only unfinished saves)'}. ganctl "
                "never starts such a run again from step 0 on its own: start a new run instead.")
        return None

    def discard_after(self, step: int) -> list[str]:
        """Delete unfinished saves and any checkpoint newer than `step` (the one just restored).

        Call only from the process that trains this run: another one's save would look unfinished.
        """
        removed = self._remove_temp()
        for newer in sorted(s for s in self._files() if s > step):
            removed += [p.name for p in self._paths(newer)]
            self._delete(newer)
        if removed:
            log.info("removed leftovers of interrupted or damaged saves: %s", ", ".join(removed))
        return removed

    def _restore_matching(self, path: str, partial: bool) -> None:
        status = None
        try:
            status = self._checkpoint_for(path).restore(path)
            if partial:
                status.expect_partial()
                status.assert_existing_objects_matched()
            else:
                status.assert_consumed()
        except (AssertionError, ValueError) as err:
            if status is not None:
                status.expect_partial()  # TF would repeat the mismatch at exit otherwise
            raise UserError(f"checkpoint {path} does not fit this model: {_first_line(err)} It "
                            "was written for a model of another width, depth or image size than "
                            f"{self.directory.parent / 'config.yaml'} now describes; use the "
                            "config the run was trained with.") from err

    def _files(self) -> dict[int, set[str]]:
        """{step: {"index", "data"}} of the finished files found; what is missing is incomplete."""
        found: dict[int, set[str]] = {}
        if self.directory.is_dir():
            for path in self.directory.iterdir():
                match = _FILE.match(path.name)
                if match:
                    found.setdefault(int(match[1]), set()).add(match[2].split("-")[0])
        return found

    def _paths(self, step: int) -> list[Path]:
        # The index first: deleting it first turns a half-deleted checkpoint into an incomplete one.
        return sorted(self.directory.glob(f"ckpt-{step}.*"), key=lambda p: p.suffix != ".index")

    def _delete(self, step: int) -> None:
        for path in self._paths(step):
            path.unlink(missing_ok=True)

    def _remove_temp(self) -> list[str]:
        # A save killed mid-write leaves these behind; TF never removes its own.
        removed = []
        for temp in self.directory.glob(f"*{TEMP_MARK}*"):
            if temp.is_dir():
                shutil.rmtree(temp, ignore_errors=True)
            else:
                temp.unlink(missing_ok=True)
            removed.append(temp.name)
        return removed

    def _write_state_file(self) -> None:
        """TF's `checkpoint` file, so tf.train.latest_checkpoint works on a ganctl run."""
        steps = self.steps()
        if not steps:
            return
        lines = [f'model_checkpoint_path: "ckpt-{steps[-1]}"',
                 *(f'all_model_checkpoint_paths: "ckpt-{s}"' for s in steps)]
        staged = self.directory / (STATE_FILE + TEMP_MARK)
        staged.write_text("\n".join(lines) + "\n")
        os.replace(staged, self.directory / STATE_FILE)

    def _check_state_file(self) -> None:
        state = self.directory / STATE_FILE
        try:
            lines = [ln.strip() for ln in state.read_text().splitlines() if ln.strip()]
        except FileNotFoundError:
            return
        except (OSError, UnicodeDecodeError):
            lines = ["<unreadable>"]
        if not lines or not all(_STATE_LINE.fullmatch(ln) for ln in lines):
            log.warning("%s is not a valid TensorFlow checkpoint state file; ignoring it (ganctl "
                        "finds checkpoints by their .index files) and rewriting it at the next "
                        "save.", state)

    def _write_failure(self, final: str, err: BaseException) -> str:
        previous = self.steps()
        kept = (f"the newest complete checkpoint is still step {previous[-1]} "
                f"(ckpt-{previous[-1]})" if previous else "no earlier checkpoint exists")
        return (f"could not write checkpoint {final}: {_first_line(err)}. The disk may be full. "
                f"Nothing of this save was kept and {kept}. Free some space, then continue with: "
                f"ganctl train resume={self.directory.parent}")


def _checkpoint(trackables: dict) -> tf.train.Checkpoint:
    checkpoint = tf.train.Checkpoint(**trackables)
    # restore() creates save_counter; creating it now saves it too, so a full match can pass.
    checkpoint.save_counter  # noqa: B018
    return checkpoint


def _damage(prefix: str) -> str | None:
    """Why the checkpoint at `prefix` cannot be read back whole, or None if it can.

    Reads every tensor: TF checks each one's CRC32C, so a flipped byte anywhere in the data file
    is caught; a truncated file raises IndexError, a damaged index an OpError.
    """
    try:
        reader = tf.train.load_checkpoint(prefix)
        for name in reader.get_variable_to_shape_map():
            reader.get_tensor(name)
    except Exception as err:  # noqa: BLE001 -- every failure means: do not use it
        return _first_line(err)
    return None


def _fsync(path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _first_line(err: BaseException) -> str:
    # TF prefixes op errors with {{function_node ...}} and ends them with [Op:Name]: noise here.
    text = re.sub(r"\{\{.*?\}\}\s*|\s*\[Op:\w+\]", "", str(err)).strip().splitlines()
    return text[0][:300] if text else type(err).__name__
