"""The wheel carries the configs and the bundled MNIST, and lists every package."""
from __future__ import annotations

import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
from setuptools import find_packages

ROOT = Path(__file__).resolve().parent.parent


def test_declared_packages_match_the_tree():
    declared = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {p for p in find_packages(ROOT, include=["ganctl*"])} | {"ganctl.conf"}
    assert declared == found


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """One wheel built from the checkout, for both tests (a build takes a while)."""
    dist = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(dist), str(ROOT)], check=True, cwd=dist)
    return next(dist.glob("ganctl-*.whl"))


@pytest.mark.slow
def test_wheel_contains_configs_and_bundled_data(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped_yaml = {f"ganctl/conf/{p.relative_to(ROOT / 'conf')}" for p in (ROOT / "conf").rglob("*.yaml")}
    assert "ganctl/conf/train.yaml" in names and "ganctl/conf/__init__.py" in names
    assert shipped_yaml <= names, shipped_yaml - names
    assert "ganctl/data/t10k-images-idx3-ubyte.gz" in names
    assert not any(n.startswith("tests/") for n in names)


@pytest.mark.slow
def test_installed_wheel_finds_its_configs_from_any_directory(wheel, tmp_path):
    """A non-editable install (no checkout on the path) composes configs from pkg://ganctl.conf."""
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target",
                    str(site), str(wheel)], check=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    code = ("import ganctl, sys; print(ganctl.__file__); from ganctl.cli import main; "
            "main(['train', 'dataset=ring', 'model=mlp', '--cfg', 'job'])")
    result = subprocess.run([sys.executable, "-c", code], cwd=elsewhere, capture_output=True,
                            text=True, env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0].startswith(str(site))
    assert "ganctl.datasets.mixtures.Ring" in result.stdout


def test_a_checkout_finds_its_configs_without_an_editable_install():
    """`python -m ganctl...` from the repository root, with no install on the path at all (-S:
    no site-packages, so no editable finder): ./ganctl must still find ./conf as ganctl.conf."""
    code = ("import ganctl, ganctl.conf; from importlib.resources import files; "
            "print(ganctl.__file__); print(ganctl.conf.__file__); "
            "print((files('ganctl.conf') / 'train.yaml').is_file()); "
            "print(sorted(p.name for p in (files('ganctl.conf') / 'recipe').iterdir())[:1])")
    result = subprocess.run([sys.executable, "-S", "-c", code], cwd=ROOT, capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == str(ROOT / "ganctl" / "__init__.py")
    assert lines[1] == str(ROOT / "conf" / "__init__.py")
    assert lines[2] == "True"
    assert lines[3].endswith(".yaml']")
