"""The CLI of a core-only install (`pip install oar-platform`: the serving machine) works without torch.

The venv is built like the export tests' torch-free venv (tests/export/lean_venv.py): oar's core
dependencies linked from this test run, this checkout's oar package, and no torch.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

import oar
from oar._core.distribution import core_requirements
from oar.runtime import load_runtime
from oar.serve.process import ServerProcess

sys.path.insert(0, str(Path(__file__).parents[1] / "export"))
from lean_venv import create_lean_venv

pytestmark = pytest.mark.slow
TEXTS = ["质量很好，非常满意", "太差了，再也不买了"]


@pytest.fixture(scope="module")
def lean_python(tmp_path_factory) -> Path:
    core = core_requirements()
    assert "torch" not in core
    return create_lean_venv(tmp_path_factory.mktemp("lean") / "venv", core, [Path(oar.__file__).parent])


def lean_oar(python: Path, *args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OAR_HOME": str(home), "COLUMNS": "200"}
    return subprocess.run(
        [str(python), "-I", "-m", "oar.cli.main", *args], capture_output=True, text=True, env=env, timeout=120
    )


def test_help_version_and_listings_run_without_torch(lean_python, trained, oar_home):
    probe = subprocess.run([str(lean_python), "-I", "-c", "import torch"], capture_output=True, text=True)
    assert probe.returncode == 1 and "No module named 'torch'" in probe.stderr
    assert lean_oar(lean_python, "--help", home=oar_home).returncode == 0
    assert lean_oar(lean_python, "--version", home=oar_home).stdout.strip() == f"oar {oar.__version__}"
    models = lean_oar(lean_python, "models", "list", home=oar_home)
    assert models.returncode == 0 and "chnsenti-smoke" in models.stdout, models.stderr
    show = lean_oar(lean_python, "models", "show", trained.model.model_id, home=oar_home)
    assert json.loads(show.stdout)["model_id"] == trained.model.model_id
    runs = lean_oar(lean_python, "runs", "show", trained.run.id, home=oar_home)
    assert runs.returncode == 0 and "valid_accuracy" in runs.stdout


def test_serve_answers_like_the_local_runtime_without_torch(lean_python, trained, oar_home):
    server = ServerProcess([trained.model.model_id])
    server.command[0:1] = [str(lean_python), "-I"]
    server.env["OAR_HOME"] = str(oar_home)
    with server:
        response = httpx.post(
            f"{server.endpoint}/v2/models/chnsenti-smoke/infer",
            json={"inputs": [{"name": "text", "datatype": "BYTES", "shape": [2], "data": TEXTS}]},
        )
    assert response.status_code == 200, response.text
    labels = next(o for o in response.json()["outputs"] if o["name"] == "label")["data"]
    assert labels == load_runtime(trained.model.path).predict(TEXTS).labels


def test_pack_writes_an_edge_directory_without_torch(lean_python, trained, oar_home, tmp_path):
    out = tmp_path / "edge"
    result = lean_oar(lean_python, "pack", trained.model.model_id, "--out", str(out), home=oar_home)
    assert result.returncode == 0, result.stderr
    assert f"cd {out} && pip install -r requirements.txt && python classify.py" in result.stdout
    assert sorted(p.name for p in out.iterdir()) == [
        "classify.py",
        "manifest.json",
        "model.onnx",
        "requirements.txt",
        "tokenizer.json",
    ]


@pytest.mark.parametrize(
    ("args", "command", "module"),
    [
        (["quickstart"], "quickstart", "torch"),
        (["train", "job.yaml"], "train", "torch"),
        (["export", "chnsenti-smoke"], "export", "torch"),
        (["quantize", "chnsenti-smoke", "--method", "int8-dynamic"], "quantize", "torch"),
    ],
)
def test_commands_that_need_torch_name_the_extra_in_one_line(lean_python, oar_home, args, command, module):
    result = lean_oar(lean_python, *args, home=oar_home)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip() == (
        f"error: oar {command} needs {module}, which is not installed: pip install 'oar-platform[train]'"
    )
