"""Serving on a device: provider selection, the clear error when CUDA is asked for and missing, the parity probe.

No GPU is needed: the CUDA paths are driven through the provider list ONNX Runtime reports, and the parity
check through two real sessions whose outputs agree or do not.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from oar._core.errors import InvalidInputError, OarError
from oar.runtime import session as sessions
from oar.runtime.session import check_provider_parity, create_session, providers_for

CPU, CUDA = "CPUExecutionProvider", "CUDAExecutionProvider"


def _scale_graph(path: Path, factor: float) -> Path:
    """``y = x * factor`` on a [None, 4] float input: a real ONNX file, written with onnx's helpers."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 4])
    k = helper.make_tensor("k", TensorProto.FLOAT, [1], [factor])
    graph = helper.make_graph([helper.make_node("Mul", ["x", "k"], ["y"])], "scale", [x], [y], [k])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


@pytest.mark.parametrize(
    ("device", "available", "expected"),
    [
        ("cpu", [CUDA, CPU], [CPU]),
        ("cuda", [CUDA, CPU], [CUDA, CPU]),
        ("auto", [CUDA, CPU], [CUDA, CPU]),
        ("auto", [CPU], [CPU]),
    ],
)
def test_the_device_picks_its_execution_providers(device, available, expected) -> None:
    assert providers_for(device, available) == expected


def test_cuda_without_the_cuda_provider_is_a_clear_error_not_a_silent_cpu_fallback(tmp_path) -> None:
    with pytest.raises(OarError, match=r"no CUDA execution provider.*onnxruntime-gpu.*--device cpu"):
        providers_for("cuda", [CPU])
    if CUDA not in sessions.ort.get_available_providers():  # this machine: the real session refuses too
        with pytest.raises(OarError, match="no CUDA execution provider"):
            create_session(_scale_graph(tmp_path / "m.onnx", 2.0), device="cuda")
    with pytest.raises(InvalidInputError, match="cpu, cuda, auto"):
        providers_for("tpu", [CPU])


def test_the_parity_probe_passes_equal_sessions_and_refuses_different_ones(tmp_path) -> None:
    same = create_session(_scale_graph(tmp_path / "a.onnx", 2.0))
    again = create_session(_scale_graph(tmp_path / "b.onnx", 2.0))
    other = create_session(_scale_graph(tmp_path / "c.onnx", 2.01))
    check_provider_parity(same, again, "a.onnx")
    with pytest.raises(OarError, match="output 'y' on CPUExecutionProvider differs from the CPU provider"):
        check_provider_parity(other, same, "c.onnx")
    feeds = sessions.probe_feeds(same)
    assert feeds is not None and feeds["x"].shape == (2, 4) and feeds["x"].dtype == np.float32


def test_serve_refuses_cuda_before_loading_anything_when_it_is_missing(trained) -> None:
    """``oar serve --device cuda`` on a machine without the CUDA provider: exit 1 and the reason, no traceback."""
    import subprocess
    import sys

    if CUDA in sessions.ort.get_available_providers():
        pytest.skip("this machine has the CUDA provider")
    result = subprocess.run(
        [sys.executable, "-m", "oar.cli.main", "serve", trained.model.model_id, "--device", "cuda", "--port", "0"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "no CUDA execution provider" in result.stderr + result.stdout
    assert "Traceback" not in result.stderr
