"""``oar jobs cluster-config``: every node installs this project's own wheel, shipped with the config.

The command builds the wheel from the source tree (a real ``pip wheel``), copies it next to
cluster.yaml, and the config mounts that folder on every node and installs the file, never a
name from an index. GCP needs its project: a missing ``--project-id`` is a one-line error.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
import yaml

import oar

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.timeout(300)


def cluster_config(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OAR_HOME": str(home), "COLUMNS": "200"}
    command = [sys.executable, "-m", "oar.cli.main", "jobs", "cluster-config", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=280)


def test_the_config_ships_and_installs_the_wheel_it_built(tmp_path):
    out = tmp_path / "cluster"
    tree_before = sorted(os.listdir(ROOT)), sorted(os.listdir(ROOT / "src"))
    result = cluster_config(
        tmp_path, "--provider", "gcp", "--region", "europe-west4", "--project-id", "p-1", "--out", str(out)
    )

    assert result.returncode == 0, result.stderr
    wheels = list((out / "wheels").glob("*.whl"))
    assert len(wheels) == 1
    wheel = wheels[0]
    name = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["name"]
    assert wheel.name == f"{name.replace('-', '_')}-{oar.__version__}-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as archive:
        files = set(archive.namelist())
        metadata = archive.read(f"{name.replace('-', '_')}-{oar.__version__}.dist-info/METADATA").decode()
    assert "oar/jobs/launcher.py" in files and "oar/__init__.py" in files
    assert f"Name: {name}\n" in metadata and f"Version: {oar.__version__}\n" in metadata
    assert (sorted(os.listdir(ROOT)), sorted(os.listdir(ROOT / "src"))) == tree_before  # nothing built in the tree

    config = yaml.safe_load((out / "cluster.yaml").read_text())
    assert config["provider"] == {"type": "gcp", "region": "europe-west4", "project_id": "p-1"}
    ((remote, local),) = config["file_mounts"].items()
    assert Path(local) == (out / "wheels").resolve()
    (setup,) = config["setup_commands"]
    assert setup == f'pip install "{remote.replace("~", "$HOME")}/{wheel.name}[train,ray]"'
    assert "YOUR" not in (out / "cluster.yaml").read_text()


def test_gcp_without_a_project_and_a_wrong_wheel_are_one_line_errors(tmp_path):
    missing = cluster_config(tmp_path, "--provider", "gcp", "--out", str(tmp_path / "a"))
    assert missing.returncode == 1 and "Traceback" not in missing.stderr
    assert "--project-id is required with --provider gcp" in missing.stderr
    assert not (tmp_path / "a").exists()  # refused before building anything

    other = tmp_path / "oar-0.0.1-py3-none-any.whl"  # the unrelated project that owns the name 'oar'
    other.write_bytes(b"PK")
    wrong = cluster_config(tmp_path, "--wheel", str(other), "--out", str(tmp_path / "b"))
    assert wrong.returncode == 1 and "is not an oar-platform wheel file" in wrong.stderr
    assert "Traceback" not in wrong.stderr
