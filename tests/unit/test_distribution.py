"""The distribution behind ``import oar``: its PyPI name in every hint, found whichever name installed it."""

from __future__ import annotations

import tomllib
from pathlib import Path

import oar
from oar._core import distribution
from oar.cli.extras import missing_dependency_message

ROOT = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def test_hints_name_the_distribution_of_pyproject():
    assert distribution.NAME == PROJECT["name"] == "oar-platform"
    assert distribution.install_hint("train") == "pip install 'oar-platform[train]'"
    assert distribution.install_hint() == "pip install oar-platform"
    missing = ModuleNotFoundError("No module named 'torch'", name="torch")
    assert missing_dependency_message(missing, ["quickstart"]) == (
        "oar quickstart needs torch, which is not installed: pip install 'oar-platform[train]'"
    )


def test_the_version_has_one_source():
    assert PROJECT["dynamic"] == ["version"] and "version" not in PROJECT
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert pyproject["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "oar.__version__"}
    assert oar.__version__.count(".") == 2


def test_the_checkout_and_its_requirements_are_found_from_the_source_tree():
    assert distribution.source_root() == ROOT
    assert distribution.core_requirements() == [d.split("==")[0] for d in PROJECT["dependencies"]]
    assert "torch" not in distribution.core_requirements()


def test_the_installed_distribution_is_found_under_its_name_or_an_earlier_one():
    """A development install made before the rename is registered as ``oar``; both provide ``import oar``."""
    installed = distribution.installed()
    assert installed is not None and installed.metadata["Name"] in {"oar-platform", "oar"}
    assert any(str(f).startswith("oar/") or str(f).endswith(".pth") for f in installed.files or [])
