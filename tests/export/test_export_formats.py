"""oar export / oar.jit.save: parity on real data decides what gets registered; known traps are handled."""

from __future__ import annotations

import onnx
import pytest
import torch
from tokenizers import Tokenizer
from torch import nn

from oar._core.errors import OarError, ParityError
from oar.export import save_text_classifier
from oar.export.lineage_data import dataset_of, tensor_batches
from oar.export.reexport import export_registered
from oar.export.source import load_source
from oar.export.traps import ExportTrapWarning
from oar.package import ModelPackage
from oar.runtime import load_runtime


class BranchOnData(nn.Module):
    """Python control flow on tensor *values*: tracing keeps one branch, the other is lost."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        logits = self.inner(input_ids)
        if bool((input_ids > 100).any()):  # false for the tracing example, true for real text
            return -logits
        return logits


class BagClassifier(nn.Module):
    def __init__(self, vocab: int, classes: int, mode: str = "mean") -> None:
        super().__init__()
        self.bag = nn.EmbeddingBag(vocab, 32, mode=mode, padding_idx=0)
        self.head = nn.Linear(32, classes)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.head(self.bag(input_ids))


class OffsetsBagClassifier(BagClassifier):
    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        flat = input_ids.reshape(-1)
        offsets = torch.arange(0, flat.numel(), input_ids.shape[1])
        return self.head(self.bag(flat, offsets))


@pytest.fixture(scope="module")
def smoke(hub, smoke_copy):
    package = ModelPackage.open(smoke_copy.path)
    tokenizer = Tokenizer.from_file(str(package.file("tokenizer.json")))
    return package, tokenizer, dataset_of(package)


def _save(model, tmp_path, smoke, name="probe", **kwargs):
    package, tokenizer, dataset = smoke
    return save_text_classifier(
        model,
        tmp_path / name,
        name=name,
        tokenizer=tokenizer,
        labels=package.manifest.labels,
        parity_batches=tensor_batches(tokenizer, dataset.valid.x[:256]),
        **kwargs,
    )


def test_an_export_that_fails_parity_on_real_data_is_not_saved(tmp_path, smoke):
    model = BranchOnData(load_source(smoke[0]))

    with pytest.raises(ParityError, match=r"disagrees with PyTorch.*not saved"):
        _save(model, tmp_path, smoke)

    assert not (tmp_path / "probe").exists()
    assert [p.name for p in tmp_path.iterdir()] == []  # the staging directory is gone too


def test_embedding_bag_is_rewritten_with_a_warning_and_exports_without_a_loop(tmp_path, smoke):
    torch.manual_seed(0)
    model = BagClassifier(smoke[1].get_vocab_size(), 2)

    with pytest.warns(ExportTrapWarning, match="EmbeddingBag"):
        package = _save(model, tmp_path, smoke, keep_source=False)

    ops = {node.op_type for node in onnx.load(str(package.file("model.onnx"))).graph.node}
    assert "Loop" not in ops and "Gather" in ops
    assert package.manifest.parity.passed and package.manifest.parity.max_abs_diff <= 1e-4


@pytest.mark.parametrize("mode", ["sum", "max"])
def test_every_embedding_bag_mode_keeps_parity_after_the_rewrite(tmp_path, smoke, mode):
    torch.manual_seed(0)
    with pytest.warns(ExportTrapWarning):
        package = _save(BagClassifier(smoke[1].get_vocab_size(), 2, mode), tmp_path, smoke, keep_source=False)
    assert package.manifest.parity.passed


def test_embedding_bag_with_offsets_is_refused_with_the_reason(tmp_path, smoke):
    model = OffsetsBagClassifier(smoke[1].get_vocab_size(), 2)

    with pytest.warns(ExportTrapWarning), pytest.raises(OarError, match=r"offsets.*slow ONNX Loop"):
        _save(model, tmp_path, smoke, keep_source=False)


def test_oar_export_onnx_reexports_from_source_weights_and_registers_with_parity(hub, smoke_copy):
    registered = export_registered(hub, smoke_copy.model_id, "onnx", name=f"{smoke_copy.name}-onnx")

    assert registered.name == f"{smoke_copy.name}-onnx" and registered.parent == smoke_copy.model_id
    parity = registered.manifest["parity"]
    assert parity["passed"] and parity["samples"] == len(dataset_of(ModelPackage.open(smoke_copy.path)).valid)
    texts = ["质量很好，非常满意", "太差了，再也不买"]
    new, old = load_runtime(registered.path), load_runtime(smoke_copy.path)
    assert new.predict(texts).labels == old.predict(texts).labels


def test_exporting_again_what_a_version_already_holds_registers_no_duplicate(hub, smoke_copy):
    before = [m.model_id for m in hub.models.list()]

    again = export_registered(hub, smoke_copy.model_id, "onnx")

    assert again.model_id == smoke_copy.model_id
    assert [m.model_id for m in hub.models.list()] == before


def test_oar_export_torch_export_writes_a_parity_checked_pt2_package(hub, smoke_copy, trained):
    registered = export_registered(hub, trained.run.id, "torch-export", name=f"{smoke_copy.name}-pt2")

    package = ModelPackage.open(registered.path)
    assert package.manifest.runtime.engine == "torch-export" and package.file("model.pt2").is_file()
    assert package.manifest.parity.passed and package.manifest.parity.samples > 0
    program = torch.export.load(str(package.file("model.pt2"))).module()
    ids = next(tensor_batches(Tokenizer.from_file(str(package.file("tokenizer.json"))), ["物流很快"]))
    assert program(ids).shape == (1, 2)
    with pytest.raises(OarError, match="torch-export artifact"):
        load_runtime(package)


def test_oar_export_refuses_unknown_formats_and_models_without_source(hub, tmp_path, smoke, smoke_copy):
    with pytest.raises(OarError, match="unknown export format"):
        export_registered(hub, smoke_copy.model_id, "tflite")  # type: ignore[arg-type]
    without_source = _save(load_source(smoke[0]), tmp_path, smoke, name="no-source", keep_source=False)
    registered = hub.register_model(without_source.path)
    with pytest.raises(OarError, match="carries no source model"):
        export_registered(hub, registered.model_id, "onnx")
