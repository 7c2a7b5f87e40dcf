"""oar quantize: each ONNX Runtime method gives a registered, measured variant, or a refusal."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys

import onnx
import pytest

from oar.export.variants import QuantizeOptions, quantize_registered
from oar.package import ModelPackage

OPTIONS = {
    "int8-dynamic": QuantizeOptions("int8-dynamic", latency_repeats=10),
    "int8-static": QuantizeOptions("int8-static", calibration_samples=48, latency_repeats=3),
    "int4-weight": QuantizeOptions("int4-weight", block_size=64, latency_repeats=3),
}
EXPECTED_OP = {"int8-dynamic": "MatMulInteger", "int8-static": "QuantizeLinear", "int4-weight": "GatherBlockQuantized"}


@pytest.fixture(scope="module")
def outcomes(hub, smoke_copy):
    return {method: quantize_registered(hub, smoke_copy.model_id, options) for method, options in OPTIONS.items()}


@pytest.mark.parametrize("method", list(OPTIONS))
def test_each_method_registers_a_labelled_variant_under_its_own_name(outcomes, smoke_copy, method):
    outcome = outcomes[method]

    assert outcome.refused is None
    variant = outcome.registered
    assert variant.name == f"{smoke_copy.name}-{method}" and variant.version == 1
    assert variant.parent == smoke_copy.model_id
    package = ModelPackage.open(variant.path)
    assert package.manifest.variant == method
    record = package.manifest.quantization
    assert record["method"] == method and EXPECTED_OP[method] in record["quantized_ops"]
    assert EXPECTED_OP[method] in {node.op_type for node in onnx.load(str(package.file("model.onnx"))).graph.node}
    assert record["size_ratio"] < 0.5  # every method shrinks the 3.7k x 128 embedding table
    assert abs(record["accuracy_drop_points"]) <= 1.0
    assert package.manifest.metrics["test_accuracy"] == pytest.approx(record["accuracy"])
    assert not any(rel.startswith("source/") for rel in package.manifest.files)


def test_variants_leave_what_the_parent_name_serves_alone(hub, smoke_copy, outcomes):
    assert hub.models.get(smoke_copy.name).model_id == smoke_copy.model_id  # `oar serve NAME` picks this one
    again = quantize_registered(hub, smoke_copy.model_id, OPTIONS["int8-dynamic"])
    assert again.registered.model_id == outcomes["int8-dynamic"].registered.model_id  # no duplicate version
    from oar._core.errors import OarError

    with pytest.raises(OarError, match="a variant gets its own name"):
        quantize_registered(hub, smoke_copy.model_id, QuantizeOptions("int8-dynamic", name=smoke_copy.name))


def test_static_int8_is_per_channel_qdq_calibrated_on_the_training_split(outcomes):
    record = outcomes["int8-static"].registered.manifest["quantization"]

    assert record["format"] == "QDQ" and record["per_channel"] is True
    assert record["calibration_batches"] == 3  # 48 training texts in batches of 16
    assert "DequantizeLinear" in record["quantized_ops"]


def test_int4_block_size_is_configurable_and_recorded(outcomes):
    assert outcomes["int4-weight"].registered.manifest["quantization"]["block_size"] == 64


def test_a_variant_slower_than_fp32_is_flagged_in_the_report(outcomes):
    """Dynamic INT8 turns Conv into ConvInteger, which x86 CPUs often run slower than float Conv."""
    outcome = outcomes["int8-dynamic"]

    flagged = [b for b in (1, 32) if outcome.report.latency_ratio(b) > 1.05]
    assert outcome.report.slower_at == flagged
    assert outcome.registered.manifest["quantization"]["slower_than_fp32_at_batch"] == flagged


def test_the_accuracy_gate_registers_within_the_allowed_drop_and_refuses_beyond_it(hub, smoke_copy):
    """Both sides of the gate run on every machine: its threshold is set from the drop just measured.

    Activation ranges calibrated on a few texts move the variant's accuracy a little, up or down
    depending on the machine's float kernels. A refusal needs a variant that loses accuracy, so the
    calibration sizes are tried in turn until one does (each ran with a gate too lenient to refuse).
    """
    before = [m.model_id for m in hub.models.list()]
    for samples in range(1, 9):
        lenient = QuantizeOptions(
            "int8-static", calibration_samples=samples, max_accuracy_drop=100.0, latency_repeats=1, name="gate-int8"
        )
        accepted = quantize_registered(hub, smoke_copy.model_id, lenient)
        assert accepted.refused is None and accepted.registered is not None
        drop = accepted.report.accuracy_drop_points
        if drop > 0:
            break
    assert drop > 0, "no calibration size from 1 to 8 texts lost accuracy: the refusal side cannot be exercised"
    registered = [m.model_id for m in hub.models.list()]

    refused = quantize_registered(hub, smoke_copy.model_id, dataclasses.replace(lenient, max_accuracy_drop=drop / 2))
    at_the_drop = quantize_registered(hub, smoke_copy.model_id, dataclasses.replace(lenient, max_accuracy_drop=drop))

    assert refused.report.accuracy_drop_points == pytest.approx(drop)  # the same calibration, the same model
    assert refused.registered is None and "not registered" in refused.refused
    assert "--max-accuracy-drop" in refused.refused
    assert at_the_drop.refused is None and at_the_drop.registered.model_id == accepted.registered.model_id
    assert [m.model_id for m in hub.models.list()] == registered  # neither a refusal nor a repeat adds a version
    assert len(registered) > len(before)


def test_options_reject_bad_values_with_a_message_naming_the_flag():
    from oar._core.errors import OarError

    for kwargs, message in [
        ({"method": "int3"}, "unknown quantization method 'int3'"),
        ({"method": "int8-dynamic", "max_accuracy_drop": -1}, "--max-accuracy-drop must be >= 0"),
        ({"method": "int4-weight", "block_size": 24}, "power of two"),
        ({"method": "int8-static", "calibration_samples": 0}, "--calibration-samples"),
    ]:
        with pytest.raises(OarError, match=message):
            QuantizeOptions(**kwargs)


def test_cli_quantize_bad_input_prints_one_line_and_exits_1(smoke_copy):
    for args, message in [
        ([smoke_copy.model_id, "--method", "int3"], "unknown quantization method 'int3'"),
        (["no-such-model", "--method", "int8-dynamic"], "no-such-model"),
    ]:
        result = subprocess.run(
            [sys.executable, "-m", "oar.cli.main", "quantize", *args],
            capture_output=True,
            text=True,
            timeout=120,
            env=os.environ,
        )
        assert result.returncode == 1, result.stderr
        assert message in result.stderr and "Traceback" not in result.stderr
