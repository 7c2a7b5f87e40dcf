"""An edge pack of an image classifier: model, manifest, runner and onnxruntime + numpy only; .npy in.

The pack's own classify.py runs in a separate Python process from the pack's directory and must answer
what the package's runtime answers; a wrong shape or a file that is not an array is one error line.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from oar.edge import RUNNER_FILE, pack_edge
from oar.export import InputSpec, export_module
from oar.models import SmallCNN
from oar.package import ModelPackage
from oar.runtime import load_runtime


@pytest.fixture(scope="module")
def image_pack(tmp_path_factory):
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("edge-images")
    path = export_module(
        SmallCNN(1, 10, width=8).eval(),
        [InputSpec([None, 1, 8, 8], "float32", "image", value_range=(0.0, 1.0))],
        folder / "package",
        name="tiny-digits",
        labels=[str(i) for i in range(10)],
    )
    package = ModelPackage.open(getattr(path, "path", path))
    return package, pack_edge(package, folder / "edge")


def _classify(pack, *args):
    return subprocess.run(
        [sys.executable, "-I", RUNNER_FILE, *args], cwd=pack, capture_output=True, text=True, timeout=120
    )


def test_an_image_pack_holds_no_tokenizer_and_needs_only_onnxruntime_and_numpy(image_pack):
    _, pack = image_pack
    assert sorted(p.name for p in pack.iterdir()) == ["classify.py", "manifest.json", "model.onnx", "requirements.txt"]
    assert [line.split("==")[0] for line in (pack / "requirements.txt").read_text().split()] == ["onnxruntime", "numpy"]


def test_the_pack_answers_what_the_runtime_answers_for_a_batch_and_a_single_image(image_pack, tmp_path):
    package, pack = image_pack
    images = np.random.default_rng(0).random((5, 1, 8, 8), dtype=np.float32)
    np.save(tmp_path / "batch.npy", images)
    np.save(tmp_path / "one.npy", images[0])
    result = _classify(pack, str(tmp_path / "batch.npy"), str(tmp_path / "one.npy"))
    assert result.returncode == 0, result.stderr
    answers = [json.loads(line) for line in result.stdout.splitlines()]
    expected = load_runtime(package).infer({"image": images})
    assert [a["label"] for a in answers[:5]] == [label.decode() for label in expected["label"]]
    assert answers[5]["label"] == answers[0]["label"] and answers[5]["index"] == 0
    np.testing.assert_allclose([a["score"] for a in answers[:5]], expected["score"], atol=1e-5)


def test_a_wrong_shape_or_a_non_array_is_one_error_line(image_pack, tmp_path):
    _, pack = image_pack
    np.save(tmp_path / "wide.npy", np.zeros((2, 1, 9, 8), np.float32))
    (tmp_path / "text.npy").write_text("not an array")
    for name, message in (("wide.npy", "does not fit the model's input"), ("text.npy", "not a readable .npy")):
        result = _classify(pack, str(tmp_path / name))
        assert result.returncode == 1 and message in result.stderr and "Traceback" not in result.stderr, result.stderr
    usage = _classify(pack)
    assert usage.returncode == 1 and "usage: python classify.py images.npy" in usage.stderr
