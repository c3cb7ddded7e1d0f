"""ganctl: train, sample and evaluate GANs with Keras 3 and Hydra."""
# The one place the version is written: pyproject.toml reads it ([tool.setuptools.dynamic]).
__version__ = "0.1.0"


def _use_the_checkouts_configs() -> None:
    """Map ganctl.conf to the checkout's conf/ when this package is imported from a checkout.

    The wheel and the editable install both ship conf/ as ganctl.conf (pyproject's package-dir).
    But `python -m ganctl...` run from the repository root imports ./ganctl ahead of any
    install, and ./ganctl has no conf/: without this, Hydra stops with "Primary config module
    'ganctl.conf' not found" whenever the venv holds a non-editable install (the README's).
    """
    import importlib.util
    import sys
    from pathlib import Path

    package = Path(__file__).resolve().parent
    checkout_conf = package.parent / "conf" / "__init__.py"
    if (package / "conf").exists() or "ganctl.conf" in sys.modules or not checkout_conf.is_file():
        return
    spec = importlib.util.spec_from_file_location(
        "ganctl.conf", checkout_conf, submodule_search_locations=[str(checkout_conf.parent)])
    module = importlib.util.module_from_spec(spec)
    sys.modules["ganctl.conf"] = module
    spec.loader.exec_module(module)
    sys.modules[__name__].conf = module   # what the import system does for a submodule


_use_the_checkouts_configs()
