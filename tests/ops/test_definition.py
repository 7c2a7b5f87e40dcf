"""Defining an op: schema checked against the reference, reference fallback, a lying kernel caught."""

from __future__ import annotations

import warnings

import pytest
import torch

import oar.ops
from oar._core.errors import OarError
from oar.ops import CppSource


def test_a_schema_naming_other_arguments_than_the_reference_is_refused():
    def reference(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return x + y

    with pytest.raises(OarError, match=r"schema's arguments \(x, z\) do not match the reference's \(x, y\)"):
        oar.ops.custom_op("oartest_ops::mismatch_names", schema="(Tensor x, Tensor z) -> Tensor")(reference)


def test_a_schema_typing_an_argument_otherwise_than_the_reference_is_refused():
    def reference(x: torch.Tensor, scale: float) -> torch.Tensor:
        return x * scale

    with pytest.raises(OarError, match="types argument 'scale' as int but the reference annotates it as float"):
        oar.ops.custom_op("oartest_ops::mismatch_types", schema="(Tensor x, int scale) -> Tensor")(reference)


def test_an_op_without_a_kernel_runs_its_reference_and_warns_once():
    @oar.ops.custom_op("oartest_ops::double")
    def double(x: torch.Tensor) -> torch.Tensor:
        return x * 2

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first, second = double(torch.ones(3)), double(torch.ones(3))
    assert torch.equal(first, torch.full((3,), 2.0)) and torch.equal(second, first)
    fallbacks = [w for w in caught if "has no cpu kernel: running its reference" in str(w.message)]
    assert len(fallbacks) == 1


def _samples(dtype: torch.dtype, generator: torch.Generator) -> list[tuple[torch.Tensor]]:
    return [(torch.randn((4, 5), generator=generator, dtype=dtype).requires_grad_(),)]


def _save_input(ctx, inputs, output) -> None:
    ctx.save_for_backward(inputs[0])


def test_a_kernel_that_disagrees_with_the_reference_fails_the_check_naming_the_first_mismatch():
    @oar.ops.custom_op("oartest_ops::square")
    def square(x: torch.Tensor) -> torch.Tensor:
        return x * x

    def wrong(x: torch.Tensor) -> torch.Tensor:
        out = x * x
        out[2, 3] += 0.5  # one element off
        return out

    square.register_kernel("cpu", wrong)
    square.register_samples(_samples)
    square.register_fake(lambda x: torch.empty_like(x))
    square.register_autograd(lambda ctx, g: 2 * g * ctx.saved_tensors[0], setup_context=_save_input)

    report = oar.ops.check(square)

    forward = next(r for r in report.results if r.name == "forward")
    assert not report.passed and not forward.passed
    assert "first mismatch at [2, 3]" in forward.detail and "1 of 20 elements differ" in forward.detail
    assert "rtol 1e-05, atol 1e-05" in forward.detail


def test_a_correct_python_kernel_passes_every_check():
    @oar.ops.custom_op("oartest_ops::cube")
    def cube(x: torch.Tensor) -> torch.Tensor:
        return x * x * x

    cube.register_kernel("cpu", lambda x: x.pow(3))
    cube.register_samples(_samples)
    cube.register_fake(lambda x: torch.empty_like(x))
    cube.register_autograd(lambda ctx, g: 3 * g * ctx.saved_tensors[0] ** 2, setup_context=_save_input)

    report = oar.ops.check(cube)

    assert report.passed, report.lines()
    assert [r.name for r in report.results] == ["build", "opcheck", "forward", "gradcheck float64", "graph breaks"]


def test_no_cpp_compiler_is_a_clear_error(tmp_path, monkeypatch):
    source = tmp_path / "kernel.cpp"
    source.write_text("#include <torch/extension.h>\ntorch::Tensor twice(torch::Tensor x) { return x * 2; }\n")

    @oar.ops.custom_op("oartest_ops::twice_cpp")
    def twice(x: torch.Tensor) -> torch.Tensor:
        return x * 2

    twice.register_kernel("cpu", cpp_source=CppSource((source,)), function="twice")
    monkeypatch.setenv("OAR_OPS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("CXX", str(tmp_path / "no-such-compiler"))

    with pytest.raises(OarError, match=r"no C\+\+ compiler found \(tried CXX=.*no-such-compiler\)"):
        twice(torch.ones(2))


def test_a_model_whose_op_kernel_disagrees_with_the_reference_is_not_exported(tmp_path):
    from torch import nn

    from oar.export.module_package import export_module
    from oar.export.onnx import InputSpec

    @oar.ops.custom_op("oartest_ops::halve")
    def halve(x: torch.Tensor) -> torch.Tensor:
        return x / 2

    halve.register_kernel("cpu", lambda x: x / 2 + (x > 1.5).to(x.dtype))  # wrong above 1.5
    halve.register_samples(lambda dtype, generator: [(torch.arange(4.0, dtype=dtype).view(2, 2),)])
    halve.register_fake(lambda x: torch.empty_like(x))
    halve.register_onnx("oartest.halve", "Halve", CppSource((tmp_path / "never_built.cpp",)))

    class UsesHalve(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return halve(x) + 1

    with pytest.raises(
        OarError, match=r"oartest_ops::halve's kernel disagrees with its reference.*first mismatch at \[1, 0\]"
    ):
        export_module(UsesHalve(), [InputSpec([None, 2], "float32", "x")], tmp_path / "package", name="halve")
    assert not (tmp_path / "package").exists()
