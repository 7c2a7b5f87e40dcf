"""The suite's own rules (tests/conftest.py): under OAR_CI=1 a skip is a failure; the slow mark follows fixtures."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
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


# --- what the repository's own text may say ---------------------------------------------------------------------
ROOT = Path(__file__).resolve().parents[2]
TEXT_SUFFIXES = {".py", ".md", ".txt", ".toml", ".yaml", ".yml", ".html", ".sh", ".cfg", ".ini", ".proto"}
# `pip install` and its options, then the first thing it installs (quoted or not).
INSTALL = re.compile(r"pip install[ \t]+(?:-{1,2}[\w-]+(?:=\S+)?[ \t]+)*['\"]?([A-Za-z0-9][A-Za-z0-9_.-]*)")
# Absolute paths of a development machine; written with a character class, so this file does not match itself.
# /home/oar-* (the notebooks' homes) and /home/jovyan (inside notebook containers) are the product's own paths.
MACHINE_PATH = re.compile(r"(?<![\w.~$-])/(?:wor[k]/|roo[t]/|hom[e]/(?!oar-|jovyan\b))")
SCRATCH_PATH = re.compile(r"(?<![\w.~$-])/tm[p]/")  # in prose and bench commands: say ../dir or $(mktemp -d)
# Words about how the project is developed rather than what it does.
PROCESS_WORDS = re.compile(
    r"\bthe issue\b|\bissue'?s\b|\bissue #?\d+|\bacceptance (?:run|test|criteri\w*)\b|\b(?:target|goal)s? asks?\b",
    re.IGNORECASE,
)


def repository_files(*roots: str) -> list[Path]:
    """Text files under ``roots`` (files or folders of the repository), build outputs left out."""
    files: list[Path] = []
    for root in roots:
        path = ROOT / root
        candidates = [path] if path.is_file() else sorted(path.rglob("*"))
        files += [
            f
            for f in candidates
            if f.is_file()
            and (f.suffix in TEXT_SUFFIXES or f.name == "Makefile")
            and not {"__pycache__", ".egg-info"}
            & {part[-9:] if part.endswith(".egg-info") else part for part in f.parts}
        ]
    return files


def hits(pattern: re.Pattern[str], files: list[Path]) -> list[str]:
    found = []
    for file in files:
        for number, line in enumerate(file.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            for match in pattern.finditer(line):
                found.append(f"{file.relative_to(ROOT)}:{number}: {match.group(0)!r} in {line.strip()[:120]}")
    return found


def test_every_install_hint_names_the_distribution_of_pyproject():
    """`oar` on PyPI is another project: a hint must name this distribution (extras included)."""
    distribution = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["name"]
    files = repository_files("src", "docs", "README.md", "bench", "Makefile")
    wrong = [
        f"{file.relative_to(ROOT)}:{number}: {line.strip()}"
        for file in files
        for number, line in enumerate(file.read_text(encoding="utf-8", errors="replace").splitlines(), 1)
        for match in INSTALL.finditer(line)
        if match.group(1).lower().startswith("oar") and match.group(1) != distribution
    ]
    assert not wrong, "\n".join(wrong)
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    own = [r for group in extras.values() for r in group if re.match(r"oar\b", r, re.IGNORECASE)]
    assert own and all(r.startswith(f"{distribution}[") for r in own), own


def test_install_hints_are_found_by_the_rule():
    lines = "pip install 'oar[train]'\npip install --quiet oar\nrun: pip install -U \"oar-platform[studio]\""
    assert [m.group(1) for m in INSTALL.finditer(lines)] == ["oar", "oar", "oar-platform"]
    assert [m.group(1) for m in INSTALL.finditer("pip install -r requirements.txt && pip install '.[train]'")] == [
        "requirements.txt"
    ]


def test_no_path_of_a_development_machine_in_the_repository():
    everywhere = repository_files("README.md", "docs", "src", "bench", "tests", "Makefile")
    prose = [f for f in everywhere if f.suffix == ".md" or f.parts[len(ROOT.parts)] == "bench"]
    found = hits(MACHINE_PATH, everywhere) + hits(SCRATCH_PATH, prose)
    assert not found, "\n".join(found)


def test_no_words_about_how_the_project_is_developed():
    found = hits(PROCESS_WORDS, repository_files("README.md", "docs", "src", "bench", "tests", "Makefile"))
    assert not found, "\n".join(found)


def test_the_text_rules_catch_what_they_are_for():
    issue, acceptance = "iss" + "ue", "accep" + "tance"  # split, so this file does not match itself
    for text in [f"the {issue}'s target is 0.87", f"as the {issue} asks", f"the long {acceptance} run", f"{issue} #12"]:
        assert PROCESS_WORDS.search(text), text
    for text in ["an issue of the load generator", "the targets with met / NOT met", "a session cookie"]:
        assert not PROCESS_WORDS.search(text), text
    assert MACHINE_PATH.search("(`/" + "work/shared/facts.md`)") and MACHINE_PATH.search("cd /" + "root/x")
    assert not MACHINE_PATH.search("~/.oar/work/ and src/oar/home/x and /home/oar-notebooks")
    assert MACHINE_PATH.search("/" + "home/alice/oar")
    assert SCRATCH_PATH.search("tar -x -C /" + "tmp/oar-ref") and not SCRATCH_PATH.search("$TMPDIR/x")


def test_every_benchmark_table_names_the_commit_it_measured():
    """A figure without its commit cannot be told stale: under each table, or in a commit column of its own."""
    lines = (ROOT / "docs" / "benchmarks.md").read_text(encoding="utf-8").splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith("|") and not lines[i - 1].startswith("|")]
    unmarked = []
    for start in starts:
        end = start
        while end + 1 < len(lines) and lines[end + 1].startswith("|"):
            end += 1
        has_commit_column = "| commit |" in lines[start]
        marked = re.fullmatch(
            r"_Measured at commit `[0-9a-f]{7,40}`\._", lines[end + 2] if end + 2 < len(lines) else ""
        )
        if not (marked or has_commit_column):
            unmarked.append(f"docs/benchmarks.md:{start + 1}: {lines[start][:60]}")
    assert len(starts) > 30 and not unmarked, "\n".join(unmarked)
