"""A model calling a custom torch.library op: export refuses it with one message naming the op."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from oar._core.errors import OarError
from oar.export.onnx import InputSpec, export_onnx


@torch.library.custom_op("oartest::twice", mutates_args=())
def twice(x: torch.Tensor) -> torch.Tensor:
    return x * 2


@twice.register_fake
def _(x: torch.Tensor) -> torch.Tensor:
    return torch.empty_like(x)


class UsesACustomOp(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(twice(x))


@pytest.mark.timeout(240)
def test_a_custom_op_is_named_in_a_clear_export_error(tmp_path):
    with pytest.raises(OarError) as raised:
        export_onnx(UsesACustomOp(), tmp_path / "model.onnx", [InputSpec([None, 4], "float32", "x")], ["y"])

    message = str(raised.value)
    assert "the model calls oartest::twice, which has no ONNX translation" in message
    assert "standard torch operations" in message and "custom_translation_table" in message
    assert not (tmp_path / "model.onnx").exists()
