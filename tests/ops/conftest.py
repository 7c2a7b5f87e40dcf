"""The fused DLRM op, its C++ kernels built once per test session (into the session's OAR_HOME)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def bag_op(oar_home):
    """``oar_dlrm::bag_interact`` with its PyTorch kernel and its ONNX Runtime library compiled."""
    from oar.ops import get_op

    op = get_op("oar_dlrm::bag_interact")
    op.build()
    op.ort_library()
    return op
