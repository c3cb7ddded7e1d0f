"""`ganctl eval`: placeholder until the evaluation metrics land."""
from __future__ import annotations

from ganctl.errors import UserError


def run(cfg, _hydra_dir=None):
    raise UserError("ganctl eval is not available yet.")
