"""UserError and the one-paragraph message ganctl prints for bad input."""
from __future__ import annotations

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
    return textwrap.fill(paragraph, width=width, initial_indent="ganctl: error: ",
                         subsequent_indent="  ")


class Interrupted(UserError):
    """SIGINT/SIGTERM: the current step was checkpointed; exit 128 + signal number."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code
