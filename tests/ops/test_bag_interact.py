"""The fused DLRM op end to end: checks, its ONNX Runtime kernel, export to ONNX and .pt2, bad packages."""

from __future__ import annotations

import json
import shutil

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper
from typer.testing import CliRunner

from oar._core.errors import IntegrityError, InvalidInputError, OarError
from oar.cli.main import app
from oar.data.synthetic_ctr import criteo_like
from oar.export.module_package import export_module
from oar.export.onnx import InputSpec
from oar.export.torch_export import export_pt2
from oar.models.dlrm import DLRM, ClickProbability
from oar.ops import check
from oar.ops._build import build_ort_library
from oar.package import MANIFEST_FILE, ModelPackage
from oar.runtime import load_runtime
from oar.runtime.session import create_session

SPECS = [InputSpec([None, 13], "float32", "dense"), InputSpec([None, 26, 4], "int64", "ids", value_range=(-1, 2))]


@pytest.fixture(scope="module")
def data():
    return criteo_like(512, seed=3)


@pytest.fixture(scope="module")
def scorer(data):
    torch.manual_seed(0)
    return ClickProbability(DLRM(data.cardinalities)).eval()


@pytest.fixture(scope="module")
def package(bag_op, scorer, data, tmp_path_factory):
    """The fused model exported once; tests that tamper with it work on a copy."""
    sample = [(torch.from_numpy(data.dense[:64]), torch.from_numpy(data.ids[:64]))]
    path = tmp_path_factory.mktemp("ctr") / "package"
    return export_module(scorer, SPECS, path, name="ctr", output_names=["click_probability"], sample_inputs=sample)


def test_the_fused_op_passes_every_check(bag_op):
    report = check(bag_op)

    assert report.passed, report.lines()
    assert "kernels: cpu=cpp" in report.results[0].detail


def test_the_check_command_prints_the_report_and_exits_zero(bag_op):
    result = CliRunner().invoke(app, ["ops", "check", "oar_dlrm::bag_interact", "--no-timing"])

    assert result.exit_code == 0, result.output
    assert "PASS  gradcheck float64" in result.output and result.output.strip().endswith("all checks passed")


def _bag_graph() -> bytes:
    inputs = [
        helper.make_tensor_value_info("ids", TensorProto.INT64, None),
        helper.make_tensor_value_info("offsets", TensorProto.INT64, None),
        helper.make_tensor_value_info("weight", TensorProto.FLOAT, None),
        helper.make_tensor_value_info("dense", TensorProto.FLOAT, None),
    ]
    node = helper.make_node("BagInteract", [i.name for i in inputs], ["out"], domain="oar.dlrm")
    graph = helper.make_graph([node], "bag", inputs, [helper.make_tensor_value_info("out", TensorProto.FLOAT, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18), helper.make_opsetid("oar.dlrm", 1)])
    return model.SerializeToString()


def test_the_onnx_runtime_kernel_equals_the_reference(bag_op, tmp_path):
    (tmp_path / "bag.onnx").write_bytes(_bag_graph())
    session = create_session(tmp_path / "bag.onnx", custom_op_libraries=[bag_op.ort_library()])

    for args in bag_op.samples(torch.float32, torch.Generator().manual_seed(7)):
        feeds = dict(zip(["ids", "offsets", "weight", "dense"], (a.detach().numpy() for a in args), strict=True))
        (got,) = session.run(None, feeds)
        np.testing.assert_allclose(got, bag_op.reference(*args).detach().numpy(), rtol=1e-5, atol=1e-5)


def test_an_id_outside_its_table_is_refused_by_every_kernel(bag_op, tmp_path):
    ids, offsets, weight, dense = bag_op.samples(torch.float32, torch.Generator().manual_seed(1))[0]
    ids = ids.clone()
    ids[0, 0, 0] = int(offsets[1]) if len(offsets) > 1 else weight.shape[0]  # one past feature 0's table

    with pytest.raises(IndexError, match="outside its embedding table"):
        bag_op.reference(ids, offsets, weight, dense)
    with pytest.raises(RuntimeError, match="outside its embedding table"):
        bag_op(ids, offsets, weight, dense)
    (tmp_path / "bag.onnx").write_bytes(_bag_graph())
    session = create_session(tmp_path / "bag.onnx", custom_op_libraries=[bag_op.ort_library()])
    with pytest.raises(Exception, match="outside its embedding table"):
        session.run(None, {"ids": ids.numpy(), "offsets": offsets.numpy(), "weight": weight.detach().numpy(),
                           "dense": dense.detach().numpy()})  # fmt: skip


def test_the_model_exports_with_the_op_as_one_custom_domain_node_and_ships_its_library(package, scorer, data):
    graph = onnx.load(str(package.file("model.onnx")))
    custom = [(n.domain, n.op_type) for n in graph.graph.node if n.domain]
    (library,) = package.manifest.runtime.custom_ops

    assert custom == [("oar.dlrm", "BagInteract")]
    assert (library.domain, library.ops, library.file) == ("oar.dlrm", ["BagInteract"], "ops/oar.dlrm.so")
    assert package.manifest.parity.passed and library.file in package.manifest.files
    served = load_runtime(package.path).infer({"dense": data.dense[:32], "ids": data.ids[:32]})
    with torch.no_grad():
        expected = scorer(torch.from_numpy(data.dense[:32]), torch.from_numpy(data.ids[:32])).numpy()
    np.testing.assert_allclose(served["click_probability"], expected, atol=1e-6)


def test_an_id_outside_its_table_is_a_client_error_when_served(package, data):
    ids = data.ids[:2].copy()
    ids[0, 8, 0] = 3  # feature 8 has 3 values: ids 0..2

    with pytest.raises(InvalidInputError, match="outside its embedding table"):
        load_runtime(package.path).infer({"dense": data.dense[:2], "ids": ids})


def test_a_package_whose_op_library_is_missing_does_not_load(package, tmp_path):
    copy = shutil.copytree(package.path, tmp_path / "package")
    (copy / "ops" / "oar.dlrm.so").unlink()

    with pytest.raises(IntegrityError, match=r"lacks ops/oar\.dlrm\.so"):
        load_runtime(copy)
    with pytest.raises(OarError, match=r"needs the custom-op library ops/oar\.dlrm\.so .* but it is missing"):
        load_runtime(ModelPackage.open(copy, verify=False))


def test_a_package_whose_op_library_was_built_for_another_onnxruntime_does_not_load(package, tmp_path):
    copy = shutil.copytree(package.path, tmp_path / "package")
    manifest = json.loads((copy / MANIFEST_FILE).read_text())
    manifest["runtime"]["custom_ops"][0]["onnxruntime"] = "1.31.0"
    (copy / MANIFEST_FILE).write_text(json.dumps(manifest))

    with pytest.raises(OarError, match=r"built for onnxruntime 1\.31\.0 on linux-\S+, but this machine runs"):
        load_runtime(copy)


def test_a_library_built_for_another_onnxruntime_refuses_to_register(bag_op, tmp_path):
    other = build_ort_library("oar.dlrm.BagInteract", bag_op.onnx.ort_source, "1.31.0")
    (tmp_path / "bag.onnx").write_bytes(_bag_graph())

    with pytest.raises(OarError, match=r"was built for onnxruntime 1\.31\.0 but this process runs onnxruntime 1\.32"):
        create_session(tmp_path / "bag.onnx", custom_op_libraries=[other])


def test_the_model_exports_to_pt2_and_loads_back_with_the_op(bag_op, scorer, data, tmp_path):
    path = export_pt2(scorer, tmp_path / "ctr.pt2", SPECS)
    loaded = torch.export.load(str(path)).module()
    dense, ids = torch.from_numpy(data.dense[:16]), torch.from_numpy(data.ids[:16])

    assert "oar_dlrm.bag_interact" in str(torch.export.load(str(path)).graph)
    with torch.no_grad():
        torch.testing.assert_close(loaded(dense, ids), scorer(dense, ids))


def test_the_generic_model_gives_the_fused_models_answers(scorer, data):
    generic = DLRM(data.cardinalities, fused=False)
    generic.load_state_dict(scorer.model.state_dict())
    dense, ids = torch.from_numpy(data.dense), torch.from_numpy(data.ids)

    with torch.no_grad():
        torch.testing.assert_close(ClickProbability(generic)(dense, ids), scorer(dense, ids), atol=1e-6, rtol=1e-5)


def test_an_edge_pack_refuses_a_package_that_needs_custom_op_libraries(package, tmp_path):
    from oar.edge.pack import pack_edge

    copy = shutil.copytree(package.path, tmp_path / "package")
    manifest = json.loads((copy / MANIFEST_FILE).read_text())
    manifest["task"] = "text-classification"  # the only task an edge pack takes
    (copy / MANIFEST_FILE).write_text(json.dumps(manifest))

    with pytest.raises(OarError, match=r"needs custom-op libraries \(oar\.dlrm\), which an edge pack cannot carry"):
        pack_edge(ModelPackage.open(copy, verify=False), tmp_path / "edge")
    assert not (tmp_path / "edge").exists()
