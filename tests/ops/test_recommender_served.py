"""The recommender end to end: trained with the Trainer, exported with the fused op, served, queried."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from oar._core.errors import OarError
from oar.client import ModelClient
from oar.data.synthetic_ctr import criteo_like
from oar.export.module_package import export_module
from oar.export.onnx import InputSpec
from oar.models.dlrm import DLRM, ClickProbability, PackedInputs, pack
from oar.runtime import load_runtime
from oar.serve.process import ServerProcess
from oar.train import Trainer, TrainerConfig

pytestmark = pytest.mark.slow


def _batches(data, size: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    dense, ids, clicks = (torch.from_numpy(a) for a in (data.dense, data.ids, data.clicks))
    return [(pack(dense[i : i + size], ids[i : i + size]), clicks[i : i + size]) for i in range(0, len(clicks), size)]


@pytest.mark.timeout(900)
def test_the_trained_recommender_is_served_with_the_fused_op_and_answers_like_pytorch(bag_op, hub):
    train, valid = criteo_like(3000, seed=11).split(0.8)
    model = DLRM(train.cardinalities)
    config = TrainerConfig(epochs=1, lr=3e-3, weight_decay=0.0, patience=None, mode="dynamic", precision_probe=False)
    Trainer(PackedInputs(model, 13, 26, 4), _batches(train, 256), _batches(valid, 600), config, progress=False).fit()
    scorer = ClickProbability(model).eval()
    specs = [InputSpec([None, 13], "float32", "dense"), InputSpec([None, 26, 4], "int64", "ids", value_range=(-1, 2))]
    sample = [(torch.from_numpy(valid.dense[:64]), torch.from_numpy(valid.ids[:64]))]
    version = export_module(
        scorer, specs, name="ctr-fused", output_names=["click_probability"], sample_inputs=sample,
        register=True, hub=hub,
    )  # fmt: skip
    dense, ids = valid.dense[:128], valid.ids[:128]
    with torch.no_grad():
        expected = scorer(torch.from_numpy(dense), torch.from_numpy(ids)).numpy()

    serve_128 = ["--max-batch-size", "128"]  # the recommender answers 128 candidates per request
    with ServerProcess([version.model_id], extra_args=serve_128) as server, ModelClient(server.endpoint) as client:
        served = client.infer(version.model_id, {"dense": dense, "ids": ids})
        outside = ids[:1].copy()
        outside[0, 8, 0] = 3  # feature 8 has 3 values
        with pytest.raises(OarError, match="outside its embedding table"):
            client.infer(version.model_id, {"dense": dense[:1], "ids": outside})

    np.testing.assert_allclose(served["click_probability"], expected, atol=1e-6)
    assert load_runtime(hub.models.get(version.name, version.version).path).package.manifest.runtime.custom_ops
