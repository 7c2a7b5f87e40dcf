"""A vision model through the whole chain: trained in oar, exported, INT8-quantized, served, queried.

The fp32 package must answer over REST and gRPC what the PyTorch model answers (probabilities within
1e-5); the INT8 static variant (calibrated on real training images) must pass the accuracy gate and
agree with fp32's argmax on the test split. Wrong datatypes and shapes are 400s on both protocols.
"""

from __future__ import annotations

import itertools

import httpx
import numpy as np
import pytest
import torch

from oar._core.errors import InvalidInputError
from oar.client import ModelClient
from oar.data import load_builtin
from oar.export import InputSpec, export_module
from oar.export.variants import QuantizeOptions, quantize_registered
from oar.models import SmallCNN
from oar.package import ModelPackage
from oar.train import TensorBatches, Trainer, TrainerConfig

from .conftest import serving

FP32_TOLERANCE = 1e-5  # probabilities, served vs PyTorch
INT8_MIN_AGREEMENT = 0.90  # argmax agreement with fp32 on the 180 test images (measured 0.94)
INT8_MAX_DROP_POINTS = 2.0  # points on 180 test images: one image is 0.56


@pytest.fixture(scope="module")
def digits_models(hub):
    """SmallCNN trained on digits, registered as digits-cnn:1 (fp32) and :2 (INT8 static)."""
    digits = load_builtin("digits")
    torch.manual_seed(0)
    model = SmallCNN(1, 10)
    train = TensorBatches(digits.train.x, digits.train.y, batch_size=32, shuffle=True)
    valid = TensorBatches(digits.valid.x, digits.valid.y, batch_size=128)
    result = Trainer(model, train, valid, TrainerConfig(epochs=6, lr=3e-3, patience=None)).fit()
    assert result.best_metrics["valid_accuracy"] > 0.8
    fp32 = export_module(
        model.eval(),
        [InputSpec([None, 1, 8, 8], "float32", "image", value_range=(0.0, 1.0))],
        name="digits-cnn",
        labels=digits.labels,
        sample_inputs=[torch.from_numpy(digits.valid.x[:64])],
        dataset=hub.register_dataset(digits).ref,
        metrics={"valid_accuracy": result.best_metrics["valid_accuracy"]},
        register=True,
        hub=hub,
    )
    options = QuantizeOptions(
        "int8-static", max_accuracy_drop=INT8_MAX_DROP_POINTS, calibration_samples=512, latency_repeats=5
    )
    outcome = quantize_registered(hub, fp32.model_id, options)
    assert outcome.refused is None, outcome.refused
    return model, digits, fp32, outcome


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_vision_model_is_exported_quantized_and_served_with_the_source_answers(digits_models):
    model, digits, fp32, outcome = digits_models
    manifest = ModelPackage.open(fp32.path).manifest
    assert manifest.task == "image-classification" and manifest.parity.passed
    assert manifest.inputs[0].model_dump() == {"name": "image", "datatype": "FP32", "shape": [-1, 1, 8, 8]}
    assert "edge" in manifest.parity.inputs and manifest.parity.samples > 64
    int8_model = outcome.registered  # a variant is its own model (NAME-int8-static): serving it is a choice
    quantization = ModelPackage.open(int8_model.path).manifest.quantization
    assert quantization["method"] == "int8-static" and quantization["calibration_batches"] == 32
    assert "QuantizeLinear" in quantization["quantized_ops"]
    assert outcome.report.accuracy_drop_points <= INT8_MAX_DROP_POINTS

    images = digits.test.x
    with torch.no_grad():
        expected = torch.softmax(model(torch.from_numpy(images)), 1).numpy()
    with (
        serving([fp32.model_id, int8_model.model_id]) as server,
        ModelClient(server.endpoint) as rest,
        ModelClient(server.grpc_endpoint) as grpc,
    ):
        answers = {
            (proto, kind): _infer_in_requests(client, served.name, served.version, images)
            for proto, client in (("rest", rest), ("grpc", grpc))
            for kind, served in (("fp32", fp32), ("int8", int8_model))
        }
        one = rest.infer(fp32.model_id, {"image": images[:1]})
    for proto in ("rest", "grpc"):
        served = answers[(proto, "fp32")]
        np.testing.assert_allclose(served["probabilities"], expected, atol=FP32_TOLERANCE)
        assert [label.decode() for label in served["label"]] == [digits.labels[i] for i in expected.argmax(1)]
        int8 = answers[(proto, "int8")]["probabilities"]
        assert (int8.argmax(1) == expected.argmax(1)).mean() >= INT8_MIN_AGREEMENT
    np.testing.assert_allclose(one["probabilities"][0], expected[0], atol=FP32_TOLERANCE)
    assert np.array_equal(answers[("rest", "int8")]["probabilities"], answers[("grpc", "int8")]["probabilities"])


def _infer_in_requests(client: ModelClient, name: str, version: int, images: np.ndarray) -> dict[str, np.ndarray]:
    """All images in requests of mixed sizes (1, 7, then 60 each): the server's batch limit is 64."""
    cuts = [0, 1, 8, *range(68, len(images), 60), len(images)]
    parts = [client.infer(name, {"image": images[a:b]}, version=version) for a, b in itertools.pairwise(cuts)]
    return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_wrong_image_datatypes_and_shapes_are_400s_on_both_protocols(digits_models):
    _, digits, fp32, _ = digits_models
    good = digits.test.x[:2]
    bad = {
        "FP64 for FP32": {"image": good.astype(np.float64)},
        "wrong height": {"image": np.zeros((2, 1, 9, 8), np.float32)},
        "wrong rank": {"image": np.zeros((2, 64), np.float32)},
        "wrong name": {"pixels": good},
    }
    with serving([fp32.model_id]) as server, ModelClient(server.grpc_endpoint) as grpc:
        for case, inputs in bad.items():
            ((name, array),) = inputs.items()
            body = {
                "inputs": [
                    {
                        "name": name,
                        "datatype": "FP64" if array.dtype == np.float64 else "FP32",
                        "shape": list(array.shape),
                        "data": array.ravel().tolist(),
                    }
                ]
            }
            response = httpx.post(f"{server.endpoint}/v2/models/digits-cnn/infer", json=body, timeout=30)
            assert response.status_code == 400, (case, response.text)
            assert "image" in response.json()["error"], case
            with pytest.raises(InvalidInputError, match="image"):
                grpc.infer("digits-cnn", inputs)
        assert grpc.infer("digits-cnn", {"image": good})["label"].shape == (2,)
