"""A user's own multi-input module through export -> parity -> register, and packages registered from a folder.

No pickle anywhere: the class is named on the command line, the weights are safetensors.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_model

import oar
from oar._core.errors import OarError
from oar.client import ModelClient
from oar.export import InputSpec
from oar.export.parity_inputs import RANDOM_BATCHES, parity_batches
from oar.export.registration import validate_package
from oar.export.user_module import load_user_module, parse_input_spec
from oar.package import ModelPackage

from .conftest import serving

USER_MODULE = '''
import torch
from torch import nn


class Tagger(nn.Module):
    """ids + mask -> (class scores, pooled norm): two inputs, two outputs."""

    def __init__(self, vocab: int, classes: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab, 16)
        self.head = nn.Linear(16, classes)

    def forward(self, ids, mask):
        weights = mask.unsqueeze(-1).float()
        pooled = (self.embedding(ids) * weights).sum(1) / weights.sum(1).clamp(min=1.0)
        return self.head(pooled), pooled.norm(dim=1)
'''
SPECS = [InputSpec([None, None], "int64", "ids", (0, 49)), InputSpec([None, None], "int64", "mask", (0, 1))]


def oar_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(cwd), *sys.path])}
    return subprocess.run(
        [sys.executable, "-m", "oar.cli.main", *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=300
    )


@pytest.fixture(scope="module")
def user_model(tmp_path_factory):
    """``mymodels.Tagger`` written to a folder, built, and its weights saved as safetensors."""
    root = tmp_path_factory.mktemp("user")
    (root / "mymodels.py").write_text(USER_MODULE, encoding="utf-8")
    sys.path.insert(0, str(root))
    try:
        import mymodels
    finally:
        sys.path.remove(str(root))
    torch.manual_seed(0)
    model = mymodels.Tagger(50, 3).eval()
    save_model(model, str(root / "tagger.safetensors"))
    torch.save(model.state_dict(), root / "tagger.pt")
    return root, model


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_oar_export_model_class_registers_a_two_input_module_that_serves_its_answers(hub, user_model):
    root, model = user_model
    result = oar_cli(
        "export", "--model-class", "mymodels:Tagger", "--weights", "tagger.safetensors",
        "--init-kwargs", '{"vocab": 50, "classes": 3}', "--name", "tagger",
        "--input-spec", "ids:int64:-1,-1:0..49", "--input-spec", "mask:int64:-1,-1:0..1", cwd=root,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    registered = hub.models.get("tagger")
    manifest = ModelPackage.open(registered.path).manifest
    assert [(t.name, t.datatype) for t in manifest.inputs] == [("ids", "INT64"), ("mask", "INT64")]
    assert [(t.name, t.datatype, t.shape) for t in manifest.outputs] == [
        ("output0", "FP32", [-1, 3]),
        ("output1", "FP32", [-1]),
    ]
    assert manifest.parity.passed and "edge" in manifest.parity.inputs

    ids = np.array([[1, 2, 3, 0], [49, 49, 0, 0]], dtype=np.int64)
    mask = np.array([[1, 1, 1, 0], [1, 1, 0, 0]], dtype=np.int64)
    with torch.no_grad():
        scores, norms = model(torch.from_numpy(ids), torch.from_numpy(mask))
    with serving([registered.model_id]) as server, ModelClient(server.grpc_endpoint) as client:
        served = client.infer("tagger", {"ids": ids, "mask": mask})
    np.testing.assert_allclose(served["output0"], scores.numpy(), atol=1e-5)
    np.testing.assert_allclose(served["output1"], norms.numpy(), atol=1e-5)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_oar_export_model_class_refuses_pickled_weights_and_bad_specs_in_one_line(hub, user_model):
    root, _ = user_model
    base = ["export", "--model-class", "mymodels:Tagger", "--init-kwargs", '{"vocab": 50, "classes": 3}']
    result = oar_cli(*base, "--weights", "tagger.pt", "--name", "t", "--input-spec", "ids:int64:-1,-1", cwd=root)
    said = " ".join(result.stderr.split())  # the console wraps long lines at the terminal width
    assert result.returncode == 1 and said.startswith("error:") and "not a .safetensors file" in said
    assert "Traceback" not in said and all(m.name != "t" for m in hub.models.list())


@pytest.mark.timeout(120)
def test_user_modules_and_specs_that_cannot_work_are_refused_with_the_reason(user_model, monkeypatch):
    root, _ = user_model
    monkeypatch.chdir(root)
    weights = root / "tagger.safetensors"
    cases = {
        "must be NAME:DTYPE:SHAPE": lambda: parse_input_spec("ids"),
        "must be numbers": lambda: parse_input_spec("ids:int64:-1,x"),
        "unsupported input dtype": lambda: parse_input_spec("ids:complex64:-1"),
        "do not fit": lambda: load_user_module("mymodels:Tagger", weights, '{"vocab": 60, "classes": 3}'),
        "cannot import nowhere": lambda: load_user_module("nowhere:Tagger", weights),
        "has no class Tag": lambda: load_user_module("mymodels:Tag", weights),
        "must be a JSON object": lambda: load_user_module("mymodels:Tagger", weights, "[50, 3]"),
        "failed": lambda: load_user_module("mymodels:Tagger", weights, '{"vocab": 50}'),
    }
    for message, call in cases.items():
        with pytest.raises(OarError, match=message):
            call()


@pytest.mark.timeout(300)
def test_jit_save_takes_several_named_inputs_and_checks_the_users_own_samples(tmp_path, user_model):
    _, model = user_model
    own = [(torch.tensor([[5, 6, 0]]), torch.tensor([[1, 1, 0]]))]
    package = oar.jit.save(model, tmp_path / "tagger", input_spec=SPECS, parity_batches=own, output_names=["s", "n"])
    parity = package.manifest.parity
    assert parity.passed and parity.inputs.startswith(f"{1 + RANDOM_BATCHES + 6} batches: 1 given")
    assert [t.name for t in package.manifest.runtime.graph_outputs] == ["s", "n"]


@pytest.mark.timeout(120)
def test_parity_sample_holds_min_max_and_all_padding_rows_and_a_batch_of_one(user_model):
    _, model = user_model
    batches, described = parity_batches(SPECS, model)
    ids = [b["ids"] for b in batches]
    assert any((t == 0).all() for t in ids) and any((t == 49).all() for t in ids)
    assert any(len(t) == 1 for t in ids) and all(t.max() <= 49 and t.min() >= 0 for t in ids)
    assert all(b["ids"].shape == b["mask"].shape for b in batches)
    assert all(set(b["mask"].unique().tolist()) <= {0, 1} for b in batches)
    assert len({t.shape[1] for t in ids}) > 3 and "edge" in described


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_oar_models_register_admits_a_whole_package_and_refuses_a_bad_one_in_one_line(hub, tmp_path, user_model):
    root, model = user_model
    package = oar.jit.save(model, tmp_path / "good", input_spec=SPECS, name="tagger-dir")
    tampered = _damaged(package.path, tmp_path / "tampered", lambda p: (p / "model.onnx").write_bytes(b"x"))

    refused = oar_cli("models", "register", str(tampered), cwd=root)
    admitted = oar_cli("models", "register", str(package.path), cwd=root)

    said = " ".join(refused.stderr.split())
    assert refused.returncode == 1 and said.startswith("error:") and "does not match its recorded digest" in said
    assert admitted.returncode == 0 and "registered tagger-dir:1" in admitted.stdout, admitted.stderr
    assert [m.version for m in hub.models.list() if m.name == "tagger-dir"] == [1]


@pytest.mark.timeout(300)
def test_a_package_with_unlisted_missing_or_outside_files_or_a_broken_model_is_refused(tmp_path, user_model):
    _, model = user_model
    good = oar.jit.save(model, tmp_path / "good", input_spec=SPECS, name="tagger-dir").path

    def relisted(p: Path) -> None:  # a digest-correct manifest over a model file that is not ONNX
        (p / "model.onnx").write_bytes(b"not a model")
        ModelPackage.write(p, ModelPackage.open(p, verify=False).manifest)

    cases = {
        "not listed in its manifest": lambda p: (p / "notes.txt").write_text("hi"),
        "lacks model.onnx": lambda p: (p / "model.onnx").unlink(),
        "is not a model package": lambda p: (p / "manifest.json").unlink(),
        "invalid manifest.json": lambda p: (p / "manifest.json").write_text("{"),
        "is a link": lambda p: (p / "elsewhere").symlink_to("/etc/hostname"),
        "does not load": relisted,
    }
    for i, (message, damage) in enumerate(cases.items()):
        with pytest.raises(OarError, match=message):
            validate_package(_damaged(good, tmp_path / f"bad{i}", damage))
    assert validate_package(good).manifest.name == "tagger-dir"


def _damaged(package: Path, copy: Path, damage) -> Path:  # type: ignore[no-untyped-def]
    shutil.copytree(package, copy)
    damage(copy)
    return copy
