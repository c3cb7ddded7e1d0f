"""Build an object from a config node's `_target_`, safely.

The YAML file is the registration (conf/<group>/<name>.yaml names ganctl.<pkg>.<name>.<Object>).
Only ganctl's own objects can be targets, so a config read back from a run folder can never
run foreign code, and a field the chosen object does not use is an error, not silently ignored.
"""
from __future__ import annotations

import dataclasses
import importlib
import inspect
from typing import Any

from omegaconf import DictConfig, OmegaConf

from ganctl.config import DatasetConfig, LossConfig, NetworkConfig, check_values
from ganctl.errors import UserError

# Per schema: the package its targets must live in, and whether a target must be a class.
_KINDS = {DatasetConfig: ("ganctl.datasets.", True), LossConfig: ("ganctl.losses.", True),
          NetworkConfig: ("ganctl.models.", False)}


def resolve_target(target: str, where: str, schema: type | None = None) -> Any:
    if not isinstance(target, str) or not target.startswith("ganctl."):
        raise UserError(f"{where}._target_={target!r} is not allowed: ganctl only builds its own "
                        "objects (a target starting with 'ganctl.').")
    module_name, _, attr = target.rpartition(".")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as err:
        raise UserError(f"{where}._target_={target} does not exist in ganctl ({err}).") from err
    package, needs_class = next((kind for base, kind in _KINDS.items()
                                 if isinstance(schema, type) and issubclass(schema, base)),
                                ("ganctl.", False))
    # Only what is defined where the target says, in the package for its kind: a name a module
    # merely imports (ganctl.x.Path, ganctl.x.rmtree) or a ganctl helper elsewhere is refused.
    if (getattr(factory, "__module__", None) != module_name or not target.startswith(package)
            or not (inspect.isclass(factory) if needs_class else callable(factory))):
        kind = "a class" if needs_class else "a function or class"
        raise UserError(f"{where}._target_={target} is not allowed: it must name {kind} defined "
                        f"in a module of {package.rstrip('.')}.")
    return factory


# Fields ganctl fills in to record what happened; they are never constructor arguments.
_RECORDS = {"source"}


def build(node: DictConfig | dict, where: str, schema: type | None = None, **context: Any) -> Any:
    """Call node._target_ with the node's fields it accepts plus `context` (shapes and the like)."""
    factory, kwargs = _arguments(node, where, schema, context)
    return factory(**kwargs)


def check(node: DictConfig | dict, where: str, schema: type | None = None,
          context_keys: tuple[str, ...] = ()) -> None:
    """Everything `build` checks, without building: run before a run folder exists."""
    _arguments(node, where, schema, dict.fromkeys(context_keys, "<from the dataset>"))


def _arguments(node, where: str, schema, context: dict) -> tuple[Any, dict]:
    values = OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else dict(node)
    factory = resolve_target(values.pop("_target_", None), where, schema)
    if schema is not None:
        check_values(values, schema, where + ".")
    accepted = inspect.signature(factory).parameters
    defaults = {}
    if schema is not None:
        defaults = {f.name: f.default for f in dataclasses.fields(schema)
                    if f.default is not dataclasses.MISSING}
    kwargs = {}
    for key, value in values.items():
        if key in _RECORDS:
            continue
        if key in accepted:
            kwargs[key] = value
        elif key in defaults and value != defaults[key]:
            raise UserError(f"{where}.{key}={value} has no effect with {where}={_short(factory)}; "
                            f"it accepts: {', '.join(k for k in accepted if k not in context)}.")
    kwargs.update({k: v for k, v in context.items() if k in accepted})
    for name, parameter in accepted.items():
        if parameter.default is inspect.Parameter.empty and kwargs.get(name) is None:
            raise UserError(f"{where}.{name} is required with {where}={_short(factory)}; give it "
                            f"on the command line, e.g. {where}.{name}=<value>.")
    return factory, kwargs


def _short(factory: Any) -> str:
    return factory.__module__.rsplit(".", 1)[-1]
