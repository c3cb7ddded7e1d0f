"""UserError and the one-paragraph message ganctl prints for bad input."""
from __future__ import annotations

import difflib
import errno
import textwrap


class UserError(Exception):
    """Bad input from the user: printed as one paragraph, no traceback, exit code 2."""

    exit_code = 2


class TrainingDiverged(UserError):
    """Losses or weights went non-finite; carries the step for the message."""

    exit_code = 3


def format_error(message: str, width: int = 100) -> str:
    """`ganctl: error: ...` wrapped as a single paragraph."""
    paragraph = " ".join(str(message).split())
    # Never break inside a path or command: it is copied from here (resume=...).
    return textwrap.fill(paragraph, width=width, initial_indent="ganctl: error: ",
                         subsequent_indent="  ", break_on_hyphens=False, break_long_words=False)


def did_you_mean(value, choices, prefix: str = "") -> str:
    """" Did you mean X?" for the accepted choice closest to a mistyped value, or ""."""
    close = difflib.get_close_matches(str(value), [str(c) for c in choices], n=1, cutoff=0.6)
    return f" Did you mean {prefix}{close[0]}?" if close else ""


class WriteFailed(UserError):
    """A write to the run folder failed (full disk, quota); what was saved before is intact."""

    exit_code = 4


# OSErrors that mean "the disk is full" (EFBIG: a file-size limit, as `ulimit -f` sets).
DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


class Interrupted(UserError):
    """SIGINT/SIGTERM: the current step was checkpointed; exit 128 + signal number."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code
