"""Static quantization's pre-pass: it leaves the process's working directory alone, and a failed
pre-pass is logged and recorded in the report instead of silently quantizing the unprocessed model.

A small MatMul network built with ``onnx.helper`` is enough: ONNX Runtime's quantizers are real, only
the model is small, so these tests take seconds and need no trained model.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from oar.export import quantize
from oar.export.quantize import quantize_onnx

pytestmark = pytest.mark.timeout(180)


def _mlp(path: Path, custom_op: bool = False) -> Path:
    """x [N, 16] -> MatMul -> Add -> Relu -> MatMul -> logits [N, 4]; optionally one op of an unknown domain."""
    rng = np.random.default_rng(0)
    weights = {
        "w1": rng.normal(size=(16, 32)).astype(np.float32),
        "b1": rng.normal(size=(32,)).astype(np.float32),
        "w2": rng.normal(size=(32, 4)).astype(np.float32),
    }
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["h"]),
        helper.make_node("Add", ["h", "b1"], ["hb"]),
        helper.make_node("Relu", ["hb"], ["r"]),
        helper.make_node("MatMul", ["r", "w2"], ["logits"]),
    ]
    opsets = [helper.make_opsetid("", 17)]
    if custom_op:  # no shape function anywhere: symbolic shape inference cannot complete
        nodes[2] = helper.make_node("Mystery", ["hb"], ["r"], domain="org.example")
        opsets.append(helper.make_opsetid("org.example", 1))
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 16])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["n", 4])],
        [numpy_helper.from_array(v, k) for k, v in weights.items()],
    )
    onnx.save(helper.make_model(graph, opset_imports=opsets), path)
    return path


def _calibration() -> list[np.ndarray]:
    rng = np.random.default_rng(1)
    return [rng.normal(size=(8, 16)).astype(np.float32) for _ in range(4)]


def test_static_quantization_never_changes_the_working_directory(tmp_path, monkeypatch):
    here = tmp_path / "cwd"
    here.mkdir()
    monkeypatch.chdir(here)
    src = _mlp(tmp_path / "mlp.onnx")
    seen: set[str] = set()
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            seen.add(os.getcwd())

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        settings = quantize_onnx(src, tmp_path / "int8.onnx", "int8-static", calibration=_calibration(), input_name="x")
    finally:
        done.set()
        watcher.join()

    assert seen == {str(here)}
    assert os.listdir(here) == []  # no scratch file of the pre-pass landed here
    assert settings["preprocess"] == {"applied": "full", "failures": []}
    assert "QuantizeLinear" in settings["quantized_ops"]
    ort.InferenceSession(str(tmp_path / "int8.onnx")).run(None, {"x": _calibration()[0]})


def test_the_pre_pass_falls_back_step_by_step_and_says_why(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    src = _mlp(tmp_path / "mystery.onnx", custom_op=True)
    work = tmp_path / "work"
    work.mkdir()

    prepared, record = quantize._preprocess(src, work)

    assert record["applied"] == "without-symbolic-shapes" and prepared.is_file()
    assert len(record["failures"]) == 1 and record["failures"][0].startswith("full: ")
    assert not (tmp_path / "sym_shape_infer_temp.onnx").exists()  # written, but in the child's scratch folder


def test_a_failed_pre_pass_is_logged_and_recorded_in_the_report(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(quantize, "PREPROCESS_TIMEOUT_S", 0.001)  # no child process finishes in time
    src = _mlp(tmp_path / "mlp.onnx")

    with caplog.at_level(logging.WARNING, logger="oar.export.quantize"):
        settings = quantize_onnx(src, tmp_path / "int8.onnx", "int8-static", calibration=_calibration(), input_name="x")

    record = settings["preprocess"]
    assert record["applied"] == "none"
    assert record["failures"] == [
        "full: timed out after 0.001 s",
        "without-symbolic-shapes: timed out after 0.001 s",
    ]
    assert any(
        "quantization pre-pass failed" in r.getMessage() and "mlp.onnx" in r.getMessage() for r in caplog.records
    )
    assert "QuantizeLinear" in settings["quantized_ops"]  # quantized all the same, from the unprocessed model


def test_quieting_the_quantizers_leaves_other_threads_and_log_levels_alone(caplog):
    root = logging.getLogger()
    level = root.level
    other: list[str] = []

    def log_from_another_thread() -> None:
        logging.getLogger("oar.test.other").warning("still heard")
        other.append("done")

    with caplog.at_level(logging.INFO), quantize._quiet_quantizer_logs():
        assert root.level == logging.INFO  # untouched by the context
        logging.info("a quantizer's INFO line")
        thread = threading.Thread(target=log_from_another_thread)
        thread.start()
        thread.join()

    assert root.level == level
    messages = [r.getMessage() for r in caplog.records]
    assert "still heard" in messages and "a quantizer's INFO line" not in messages
