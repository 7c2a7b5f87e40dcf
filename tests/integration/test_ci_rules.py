"""The suite's own rules (tests/conftest.py): under OAR_CI=1 a skip is a failure; the slow mark follows fixtures."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(120)
PROBE = """
import pytest

missing = pytest.importorskip("oar_no_such_module")
"""
SKIPS = """
import pytest

def test_skips_at_run_time():
    pytest.skip("Paddle environment absent")

@pytest.fixture()
def trained():
    return "a stand-in named like the shared fixture"

def test_uses_a_slow_fixture(trained):
    assert trained

def test_is_fast():
    pass
"""


def run_probe(tmp_path: Path, ci: bool, *args: str) -> subprocess.CompletedProcess[str]:
    shutil.copy(Path(__file__).parents[1] / "conftest.py", tmp_path / "conftest.py")
    (tmp_path / "test_importorskip.py").write_text(PROBE)
    (tmp_path / "test_skips.py").write_text(SKIPS)
    env = {k: v for k, v in os.environ.items() if k != "OAR_CI"} | ({"OAR_CI": "1"} if ci else {})
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "markers=slow", *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
        timeout=100,
    )


def test_skips_are_skips_on_a_development_machine(tmp_path):
    result = run_probe(tmp_path, ci=False)
    assert result.returncode == 0, result.stdout
    assert "2 passed, 2 skipped" in result.stdout


def test_under_oar_ci_every_skip_is_a_failure_that_says_why(tmp_path):
    result = run_probe(tmp_path, True, "--continue-on-collection-errors")
    assert result.returncode == 1, result.stdout
    assert "1 failed, 2 passed, 1 error" in result.stdout
    assert "skipped under OAR_CI=1, where every test must run" in result.stdout
    assert "oar_no_such_module" in result.stdout and "Paddle environment absent" in result.stdout


def test_tests_using_a_fixture_that_trains_are_marked_slow(tmp_path):
    result = run_probe(tmp_path, False, "-m", "not slow", "test_skips.py")
    assert "1 passed, 1 skipped, 1 deselected" in result.stdout, result.stdout
