"""Checkpoints: tf.train.Checkpoint + CheckpointManager, with restores that are checked.

The newest checkpoint is found from the `ckpt-<step>.index` files themselves, not only from
TF's `checkpoint` state file, and a checkpoint that fails to restore is named and skipped.
"""
from __future__ import annotations

import logging
import re
import shutil
from pathlib import Path

import tensorflow as tf

from ganctl.errors import UserError

log = logging.getLogger("ganctl")
_INDEX = re.compile(r"^ckpt-(\d+)\.index$")


class Checkpoints:
    def __init__(self, directory: Path, keep: int, **trackables):
        self.directory = Path(directory)
        self.checkpoint = tf.train.Checkpoint(**trackables)
        self.manager = tf.train.CheckpointManager(self.checkpoint, str(self.directory),
                                                  max_to_keep=keep, checkpoint_name="ckpt")

    def steps(self) -> list[int]:
        """Steps that have a complete checkpoint (index and data files), oldest first."""
        if not self.directory.is_dir():
            return []
        found = []
        for path in self.directory.iterdir():
            match = _INDEX.match(path.name)
            if match and list(self.directory.glob(f"ckpt-{match[1]}.data-*")):
                found.append(int(match[1]))
        return sorted(found)

    def save(self, step: int) -> str:
        self._remove_stale_temp_files()
        return self.manager.save(checkpoint_number=step)

    def restore(self, step: int | None = None, partial: bool = False) -> int | None:
        """Restore `step` (default: the newest that loads); returns the step or None if none.

        With partial=False every object of this run must match the checkpoint, so a different
        architecture fails loudly instead of loading half the weights.
        """
        available = self.steps()
        if step is not None:
            if step not in available:
                raise UserError(f"checkpoint={step} does not exist in {self.directory}; "
                                f"available steps: {available or 'none'}.")
            candidates = [step]
        else:
            candidates = list(reversed(available))
        for candidate in candidates:
            path = str(self.directory / f"ckpt-{candidate}")
            try:
                status = self.checkpoint.restore(path)
                if partial:
                    status.expect_partial()
                else:
                    status.assert_existing_objects_matched()
            except (AssertionError, ValueError) as err:
                raise UserError(f"checkpoint {path} does not fit this model: {_first_line(err)} "
                                "It was probably written with another model, width or dataset "
                                "resolution; resume with the run's own config.") from err
            except (tf.errors.OpError, IndexError, OSError) as err:
                if step is not None:
                    raise UserError(f"checkpoint {path} cannot be read ({_first_line(err)}).") from err
                log.warning("checkpoint %s is unreadable (%s); trying the previous one",
                            path, _first_line(err))
                continue
            return candidate
        if candidates:
            raise UserError(f"no checkpoint in {self.directory} can be read "
                            f"(tried steps {candidates}).")
        return None

    def _remove_stale_temp_files(self) -> None:
        # A save killed mid-write leaves *_temp folders that TF never removes.
        for temp in self.directory.glob("*_temp*"):
            shutil.rmtree(temp, ignore_errors=True) if temp.is_dir() else temp.unlink(missing_ok=True)


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0][:300] if text else type(err).__name__
