"""The runtime and the edge pack run in fresh virtualenvs that cannot import torch."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
from lean_venv import create_lean_venv

import oar
from oar._core.distribution import core_requirements
from oar.edge import EDGE_REQUIREMENTS, pack_edge
from oar.package import ModelPackage
from oar.runtime import load_runtime

TEXTS = ["这家酒店的服务很周到，房间也很干净", "质量太差了，用了两天就坏了"]

PREDICT = """
import json, sys
from oar.runtime import load_runtime
runtime = load_runtime(sys.argv[1])
prediction = runtime.predict(json.loads(sys.argv[2]))
try:
    import torch  # noqa: F401
    torch_importable = True
except ModuleNotFoundError:
    torch_importable = False
print(json.dumps({"labels": prediction.labels, "torch_loaded": "torch" in sys.modules,
                  "torch_importable": torch_importable, "onnxruntime": "onnxruntime" in sys.modules}))
"""


def _core_requirements() -> list[str]:
    """oar's own dependencies without extras: what a serving machine installs."""
    return core_requirements()


def _run(python: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(python), "-I", *args], capture_output=True, text=True, timeout=120, cwd=cwd)


def test_a_package_predicts_in_a_fresh_venv_without_torch(tmp_path, smoke_copy):
    assert "torch" not in _core_requirements()
    started = time.perf_counter()
    python = create_lean_venv(tmp_path / "venv", _core_requirements(), [Path(oar.__file__).parent])
    created_s = time.perf_counter() - started

    result = _run(python, "-c", PREDICT, str(smoke_copy.path), json.dumps(TEXTS, ensure_ascii=False))

    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report == {
        "labels": load_runtime(smoke_copy.path).predict(TEXTS).labels,
        "torch_loaded": False,
        "torch_importable": False,
        "onnxruntime": True,
    }
    assert created_s < 30, f"creating the lean venv took {created_s:.1f} s"


@pytest.fixture(scope="module")
def edge_pack(tmp_path_factory, smoke_copy) -> Path:
    out = tmp_path_factory.mktemp("edge") / "pack"
    return pack_edge(ModelPackage.open(smoke_copy.path), out, archive=True)


def test_the_edge_pack_holds_model_tokenizer_manifest_runner_and_pinned_requirements(edge_pack):
    names = sorted(p.name for p in edge_pack.iterdir())
    assert names == ["classify.py", "manifest.json", "model.onnx", "requirements.txt", "tokenizer.json"]
    pins = (edge_pack / "requirements.txt").read_text().split()
    assert [p.split("==")[0] for p in pins] == list(EDGE_REQUIREMENTS) and all("==" in p for p in pins)
    assert ModelPackage.open(edge_pack).manifest.labels == ["negative", "positive"]  # digests still verify
    assert edge_pack.with_name("pack.tar.gz").stat().st_size > 0


def test_the_edge_pack_classifies_from_its_own_directory_with_only_its_requirements(tmp_path, edge_pack, smoke_copy):
    requirements = [p.split("==")[0] for p in (edge_pack / "requirements.txt").read_text().split()]
    python = create_lean_venv(tmp_path / "venv", requirements)

    result = _run(python, "classify.py", *TEXTS, cwd=edge_pack)

    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    expected = load_runtime(smoke_copy.path).predict(TEXTS)
    assert [line["label"] for line in lines] == expected.labels
    assert [line["score"] for line in lines] == pytest.approx(expected.scores.tolist(), abs=1e-5)
    stdin = subprocess.run(
        [str(python), "-I", "classify.py"],
        input="\n".join(TEXTS),
        capture_output=True,
        text=True,
        timeout=60,
        cwd=edge_pack,
    )
    assert [json.loads(line)["label"] for line in stdin.stdout.splitlines()] == expected.labels


def test_the_edge_runner_refuses_a_tampered_model(tmp_path, edge_pack):
    import shutil

    copy = shutil.copytree(edge_pack, tmp_path / "copy")
    with open(copy / "model.onnx", "ab") as f:
        f.write(b"\0")
    requirements = [p.split("==")[0] for p in (copy / "requirements.txt").read_text().split()]
    python = create_lean_venv(tmp_path / "venv", requirements)

    result = _run(python, "classify.py", "text", cwd=copy)

    assert result.returncode == 1 and "does not match the digest" in result.stderr
