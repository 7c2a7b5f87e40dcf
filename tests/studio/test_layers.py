"""The studio sits on top: nothing below it imports it, and the CLI loads it only for `oar studio`."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "oar"
ABOVE_STUDIO = {"studio", "cli"}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_nothing_below_the_studio_imports_it():
    offenders = [
        str(path.relative_to(SRC))
        for path in SRC.rglob("*.py")
        if path.relative_to(SRC).parts[0] not in ABOVE_STUDIO
        and any(name == "oar.studio" or name.startswith("oar.studio.") for name in _imports(path))
    ]
    assert offenders == []


@pytest.mark.timeout(120)
def test_the_cli_does_not_load_the_studio_or_its_web_stack():
    code = "import sys, oar.cli.main; print(sorted(m for m in ('fastapi', 'jinja2', 'oar.studio') if m in sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=110, check=True)
    assert loaded.stdout.strip() == "[]"
