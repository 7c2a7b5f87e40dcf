"""Text-to-image packages: import a local diffusers pipeline, serve it, query it, refuse what is over its caps.

Every test uses the tiny random-weight pipeline of ``tiny_pipeline.py`` (built once per module), 32x32 images
and two denoising steps, so a generation costs well under a second on an idle CPU.
"""

from __future__ import annotations

import io
import json
import os
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

pytest.importorskip("diffusers")

from oar._core.errors import InvalidInputError, OverloadedError
from oar.client import ModelClient
from oar.importers.diffusers import PipelineImport, import_pipeline
from oar.runtime import load_runtime
from oar.runtime.text_to_image import GenerationStopped
from oar.serve.process import ServerProcess

from .tiny_pipeline import SIDE, build_tiny_pipeline

PROMPT = "a red lighthouse on a cliff"
MAX_TOKENS = 32  # the tiny tokenizer's context: one token a byte, plus start and end


@pytest.fixture(scope="module")
def pipeline_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_pipeline(tmp_path_factory.mktemp("tiny-sd") / "pipeline", max_prompt_tokens=MAX_TOKENS)


@pytest.fixture(scope="module")
def registered(hub, pipeline_dir):
    """The tiny pipeline in the hub, with caps a test can reach: 64 px, 900 steps, one at a time, one waiting."""
    spec = PipelineImport(pipeline_dir, "tiny-t2i", max_size=64, max_steps=900, default_steps=2, max_queue=1)
    return import_pipeline(hub, spec)


@pytest.fixture(scope="module")
def runtime(hub, registered):
    return load_runtime(hub.open_package(registered.name, registered.version))


def _request(runtime, prompt: str = PROMPT, **parameters):
    settings = {"steps": 2, "width": SIDE, "height": SIDE, "seed": 1, **parameters}
    return runtime.parse({"prompt": np.array([prompt.encode()], dtype=object)}, settings)


def _size(png: bytes) -> tuple[int, int]:
    """Width and height from the PNG's IHDR chunk (no image library needed)."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", png[16:24])


# --- the package ------------------------------------------------------------------------------------------------
def test_the_package_holds_configs_and_safetensors_only_with_its_caps(registered):
    files = registered.manifest["files"]
    weights = [f for f in files if f.endswith(".safetensors")]
    assert len(weights) == 3  # unet, vae, text encoder
    assert not [f for f in files if f.endswith((".bin", ".pt", ".pth", ".ckpt", ".pkl"))]
    manifest = registered.manifest
    assert manifest["task"] == "text-to-image" and manifest["runtime"]["engine"] == "diffusers"
    caps = manifest["generation"]
    assert (caps["max_width"], caps["max_steps"], caps["max_prompt_tokens"]) == (64, 900, MAX_TOKENS)
    assert caps["default_width"] == SIDE and caps["size_multiple"] == 8


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: d, "has no model_index.json"),
        (lambda d: (d / "model_index.json").write_text('{"_class_name": "NoSuchPipeline"}') and d, "does not load"),
        (lambda d: d / "missing", "is not a directory"),
    ],
    ids=["empty", "broken-index", "missing"],
)
def test_a_directory_that_is_not_a_pipeline_is_refused_with_a_reason(hub, tmp_path, make, message):
    before = len(hub.models.list())
    with pytest.raises(InvalidInputError, match=message):
        import_pipeline(hub, PipelineImport(make(tmp_path), "not-a-pipeline"))
    assert len(hub.models.list()) == before


def test_pickled_weights_are_refused(hub, pipeline_dir, tmp_path):
    """A pipeline whose weights are only a pickle (``.bin``) is not loaded: loading a pickle can run code."""
    import shutil

    copy = shutil.copytree(pipeline_dir, tmp_path / "pickled")
    weights = copy / "unet" / "diffusion_pytorch_model.safetensors"
    weights.rename(weights.with_suffix(".bin"))
    with pytest.raises(InvalidInputError, match="safetensors"):
        import_pipeline(hub, PipelineImport(copy, "pickled"))


def test_more_steps_than_the_scheduler_has_are_refused_at_import(hub, pipeline_dir):
    with pytest.raises(InvalidInputError, match="under 1000, the scheduler's training timesteps"):
        import_pipeline(hub, PipelineImport(pipeline_dir, "too-many-steps", max_steps=1000))


def test_the_cli_refuses_a_non_pipeline_in_one_line(oar_home, tmp_path):
    env = {**os.environ, "OAR_HOME": str(oar_home), "COLUMNS": "200"}
    command = [sys.executable, "-m", "oar.cli.main", "import", "diffusers", str(tmp_path), "--name", "x"]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 1 and "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "is not a diffusers pipeline: it has no model_index.json" in lines[0], result.stderr


# --- the runtime ------------------------------------------------------------------------------------------------
def test_the_same_seed_gives_the_same_png_and_another_seed_another(runtime):
    first = runtime.generate(_request(runtime, seed=7), lambda: None)
    again = runtime.generate(_request(runtime, seed=7), lambda: None)
    other = runtime.generate(_request(runtime, seed=8), lambda: None)
    assert first == again and first != other
    assert _size(first) == (SIDE, SIDE)


def test_generation_stops_between_steps_when_asked(runtime):
    asked = []

    def stop():
        asked.append(1)
        return "the client went away" if len(asked) > 2 else None

    with pytest.raises(GenerationStopped, match="went away"):
        runtime.generate(_request(runtime, steps=50), stop)
    assert len(asked) == 3  # once before the loop, then after each step until it said stop


@pytest.mark.parametrize(
    ("prompt", "parameters", "message"),
    [
        ("x" * MAX_TOKENS, {}, f"at most {MAX_TOKENS}"),
        ("   ", {}, "is empty"),
        (PROMPT, {"width": 128}, "'width' must be an integer from 8 to 64"),
        (PROMPT, {"height": 20}, "multiple of 8"),
        (PROMPT, {"steps": 901}, "'steps' must be an integer from 1 to 900"),
        (PROMPT, {"steps": "many"}, "'steps' must be an integer"),
        (PROMPT, {"guidance": 99}, "'guidance' must be a number"),
        (PROMPT, {"seed": -1}, "'seed'"),
    ],
    ids=["too-long", "empty", "wide", "odd-height", "steps", "steps-type", "guidance", "seed"],
)
def test_requests_over_the_caps_are_refused_before_they_run(runtime, prompt, parameters, message):
    with pytest.raises(InvalidInputError, match=message):
        _request(runtime, prompt, **parameters)


# --- served: hub -> oar serve (a real process) -> ModelClient ---------------------------------------------------
@pytest.fixture(scope="module")
def t2i_server(registered):
    process = ServerProcess([registered.model_id]).start(timeout=240)  # torch + diffusers: a slow import when busy
    try:
        yield process
    finally:
        process.stop()


def _post_infer(server, model: str, steps: int) -> socket.socket:
    """Send an inference request on a raw connection and leave it waiting for the answer."""
    body = json.dumps(
        {
            "inputs": [{"name": "prompt", "datatype": "BYTES", "shape": [1], "data": [PROMPT]}],
            "parameters": {"steps": steps, "width": 64, "height": 64, "seed": 1},
        }
    ).encode()
    sock = socket.create_connection((server.host, server.port), timeout=10)
    head = f"POST /v2/models/{model}/infer HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
    sock.sendall(head.encode() + f"content-length: {len(body)}\r\n\r\n".encode() + body)
    return sock


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_served_images_match_the_runtime_over_rest_and_grpc(t2i_server, runtime, registered):
    expected = runtime.generate(_request(runtime, seed=5), lambda: None)
    parameters = {"steps": 2, "width": SIDE, "height": SIDE, "seed": 5}
    with ModelClient(t2i_server.endpoint, timeout=120) as client:
        png = client.predict(registered.name, inputs={"prompt": PROMPT}, parameters=parameters)
        assert client.metadata(registered.name)["parameters"]["generation"]["max_steps"] == 900
    with ModelClient(t2i_server.grpc_endpoint, timeout=120) as client:
        over_grpc = client.predict(registered.name, inputs={"prompt": PROMPT}, parameters=parameters)
    assert png == expected == over_grpc


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_bad_requests_get_a_400_and_the_queue_keeps_serving(t2i_server, registered):
    with ModelClient(t2i_server.endpoint, timeout=120) as client:
        for prompt, parameters, message in [
            ("x" * 200, {}, "tokens"),
            (PROMPT, {"width": 4096, "height": 4096}, "'width' must be an integer from 8 to 64"),
            (PROMPT, {"steps": 10_000}, "'steps' must be an integer from 1 to 900"),
        ]:
            with pytest.raises(InvalidInputError, match=message):
                client.predict(registered.name, inputs={"prompt": prompt}, parameters=parameters)
        as_json = {"binary_data_output": False}
        with pytest.raises(InvalidInputError, match="PNG bytes, which JSON cannot hold"):
            client.infer(registered.name, {"prompt": np.array([b"a cat"], dtype=object)}, parameters=as_json)
        png = client.predict(registered.name, inputs={"prompt": PROMPT}, parameters={"steps": 2, "width": 64})
    assert _size(png) == (64, SIDE)  # height: the model's default


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_client_that_disconnects_stops_its_generation_and_others_are_served(t2i_server, registered):
    """900 steps at 64x64 take minutes; the reset connection must free the only slot at the next step."""
    with ModelClient(t2i_server.endpoint, timeout=40) as client:
        client.predict(registered.name, inputs={"prompt": PROMPT}, parameters={"steps": 1, "width": SIDE})  # warm
        long_running = _post_infer(t2i_server, registered.name, steps=900)
        waiting = _post_infer(t2i_server, registered.name, steps=900)  # the one queue place
        time.sleep(1.0)
        with pytest.raises(OverloadedError, match="waiting"):  # slot and queue full: shed at once
            ModelClient(t2i_server.endpoint, retry=_no_retry()).predict(registered.name, inputs={"prompt": PROMPT})
        long_running.settimeout(0.5)
        with pytest.raises(TimeoutError):  # still generating: no answer yet
            long_running.recv(1)
        for sock in (long_running, waiting):  # a reset, as when a client process dies or gives up
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()
        started = time.monotonic()
        png = client.predict(registered.name, inputs={"prompt": PROMPT}, parameters={"steps": 2, "width": SIDE})
        waited = time.monotonic() - started
    assert _size(png)[0] == SIDE
    assert waited < 30, f"the next request waited {waited:.0f} s: the abandoned generation kept running"
    metrics = httpx.get(f"{t2i_server.endpoint}/metrics", timeout=10).text
    cancelled = [line for line in metrics.splitlines() if "cancelled" in line and registered.name in line]
    assert any(float(line.rsplit(" ", 1)[1]) >= 2 for line in cancelled if not line.startswith("#")), cancelled


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_rest_client_that_closes_its_connection_stops_its_generation(t2i_server, registered):
    """A plain close (FIN, not a reset) mid-generation: the server's probe meets the closed socket's reset and
    cancels the running and the queued generation; a half-closed client (write side shut, still reading) is
    still answered."""
    with ModelClient(t2i_server.endpoint, timeout=40) as client:
        client.predict(registered.name, inputs={"prompt": PROMPT}, parameters={"steps": 1, "width": SIDE})  # warm
        before = _cancelled(t2i_server, registered.name)
        long_running = _post_infer(t2i_server, registered.name, steps=900)
        waiting = _post_infer(t2i_server, registered.name, steps=900)
        time.sleep(1.0)
        long_running.close()  # FIN: the client is gone, its process still alive
        waiting.close()
        started = time.monotonic()
        while _cancelled(t2i_server, registered.name) - before < 2 and time.monotonic() - started < 30:
            time.sleep(0.1)  # the probe meets the reset at the latest one sweep later
        png = client.predict(registered.name, inputs={"prompt": PROMPT}, parameters={"steps": 2, "width": SIDE})
        waited = time.monotonic() - started
        half_closed = _post_infer(t2i_server, registered.name, steps=2)
        half_closed.shutdown(socket.SHUT_WR)  # done sending, still reading: must get its image
        half_closed.settimeout(60)
        answer = b""
        while chunk := half_closed.recv(65536):
            answer += chunk
        half_closed.close()
    assert _size(png)[0] == SIDE
    assert waited < 30, f"the next request waited {waited:.0f} s: the closed connection's generation kept running"
    assert _cancelled(t2i_server, registered.name) - before >= 2
    assert b"HTTP/1.1 200 OK\r\n" in answer and b"\x89PNG" in answer, answer[:200]


def _cancelled(server, model: str) -> float:
    metrics = httpx.get(f"{server.endpoint}/metrics", timeout=10).text
    lines = [line for line in metrics.splitlines() if "cancelled" in line and model in line and line[0] != "#"]
    return sum(float(line.rsplit(" ", 1)[1]) for line in lines)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_grpc_call_past_its_deadline_stops_its_generation(t2i_server, registered):
    import grpc

    from oar.protocol import grpc_service_pb2 as pb
    from oar.protocol import grpc_service_pb2_grpc as pb_grpc

    request = pb.ModelInferRequest(model_name=registered.name)
    request.inputs.add(name="prompt", datatype="BYTES", shape=[1]).contents.bytes_contents.append(PROMPT.encode())
    for key, value in {"steps": 900, "width": 64, "height": 64}.items():
        request.parameters[key].int64_param = value
    with grpc.insecure_channel(t2i_server.grpc_address) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        with pytest.raises(grpc.RpcError) as caught:
            stub.ModelInfer(request, timeout=2.0)
        assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    started = time.monotonic()
    with ModelClient(t2i_server.grpc_endpoint, timeout=40) as client:
        png = client.predict(registered.name, inputs={"prompt": PROMPT}, parameters={"steps": 2, "width": SIDE})
    assert _size(png)[0] == SIDE and time.monotonic() - started < 30


def _no_retry():
    from oar.client._common import RetryPolicy

    return RetryPolicy(attempts=1)


def test_png_helper_reads_a_real_png():
    """``_size`` reads what Pillow writes (guards the helper the other tests rely on)."""
    from PIL import Image

    from oar.runtime.text_to_image import png_bytes

    png = png_bytes(Image.new("RGB", (24, 16)))
    assert _size(png) == (24, 16) and Image.open(io.BytesIO(png)).size == (24, 16)
