"""Per-request pieces of the serving hot path, each timed against its baseline in the same process.

- gRPC request decoding (``decode_model_infer_request``), and the two choices inside it: ``shape[:]``
  against ``list(shape)``, a slotted ``InferRequest`` against the frozen dataclass it used to be;
- gRPC response serialization (``serialize_model_infer_response``) against building the same
  ``ModelInferResponse`` through the protobuf runtime (the bytes are checked equal);
- a whole unary HTTP/2 response (``_unary_response``) against three ``frame()`` calls (bytes checked equal);
- the batch queue: push and pop of 64 entries, the slotted ``_Pending`` against an ``order=True`` dataclass.

The request and outputs are the quickstart classifier's (one review in; label, score, probabilities out).
Each figure is the best of ``--repeat`` timings of ``--number`` calls, in µs per call (per request for
the queue). Run on one core: ``taskset -c 0 python bench/serve_micro.py``. Against another version of
oar, put its ``src`` first on ``PYTHONPATH``; pieces that version lacks are skipped.
"""

from __future__ import annotations

import argparse
import heapq
import struct
import timeit
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from oar.protocol import grpc_service_pb2 as pb
from oar.protocol.codec import InferRequest
from oar.protocol.grpc_codec import decode_model_infer_request, serialize_model_infer_response
from oar.protocol.raw import to_raw
from oar.serve.batching import _Pending
from oar.serve.grpc_server import _OK_TRAILERS, _RESPONSE_HEADERS, DATA, END_HEADERS, END_STREAM, HEADERS, frame

TEXT = "质量太差了，用了两天就坏了，非常失望。"
OUTPUTS = {
    "label": np.array([b"negative"], dtype=object),
    "score": np.array([0.93], dtype=np.float32),
    "probabilities": np.array([[0.93, 0.07]], dtype=np.float32),
}
DATATYPES = {"label": "BYTES", "score": "FP32", "probabilities": "FP32"}


@dataclass(frozen=True)
class FrozenInferRequest:  # InferRequest's layout before it was slotted
    inputs: dict[str, np.ndarray]
    id: str | None = None
    outputs: list[Any] | None = None
    parameters: dict[str, Any] = field(default_factory=dict)


@dataclass(order=True)
class OrderedPending:  # _Pending's layout before its heap order was written out
    rank: int
    seq: int
    inputs: Any = field(compare=False)
    size: int = field(compare=False)
    key: Any = field(compare=False)
    future: Any = field(compare=False)
    enqueued_ns: int = field(compare=False)
    deadline_ns: int = field(compare=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--number", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()

    def us(call: Callable[[], object], per: int = 1) -> float:
        return (
            min(timeit.repeat(call, number=args.number // per, repeat=args.repeat)) / (args.number // per) / per * 1e6
        )

    rows: list[tuple[str, float, str, float | None]] = []
    request = _request()
    tensor = request.inputs[0]
    rows.append(("decode ModelInferRequest", us(lambda: decode_model_infer_request(request)), "", None))
    rows.append(("  shape[:]", us(lambda: tensor.shape[:]), "list(shape)", us(lambda: list(tensor.shape))))
    rows.append(
        (
            "  InferRequest(...)",
            us(lambda: InferRequest({}, None, None, {})),
            "frozen dataclass",
            us(lambda: FrozenInferRequest({}, None, None, {})),
        )
    )

    direct = serialize_model_infer_response("chnsenti-cls", "1", OUTPUTS, DATATYPES)
    assert direct == _runtime_response(), "direct serialization differs from the protobuf runtime's"
    rows.append(
        (
            "serialize ModelInferResponse",
            us(lambda: serialize_model_infer_response("chnsenti-cls", "1", OUTPUTS, DATATYPES)),
            "protobuf runtime",
            us(_runtime_response),
        )
    )

    try:
        from oar.serve.grpc_server import _unary_response
    except ImportError:
        print("(no _unary_response in this version: skipped)")
    else:
        message = direct
        assert _unary_response(7, message) == _framed(7, message)
        packed, framed = us(lambda: _unary_response(7, message)), us(lambda: _framed(7, message))
        rows.append(("unary response frames", packed, "3 frame() calls", framed))

    slotted, ordered = us(lambda: _queue(_Pending), 64), us(lambda: _queue(OrderedPending), 64)
    rows.append(("queue push+pop (depth 64)", slotted, "order=True dataclass", ordered))

    print("\n| piece | µs | baseline | µs | ratio |\n|---|---:|---|---:|---:|")
    for name, value, baseline, base_value in rows:
        ratio = f"{base_value / value:.2f}x" if base_value else ""
        base = f"{base_value:.2f}" if base_value else ""
        print(f"| {name} | {value:.2f} | {baseline} | {base} | {ratio} |")


def _request() -> pb.ModelInferRequest:
    message = pb.ModelInferRequest(model_name="chnsenti-cls")
    message.inputs.add(name="text", datatype="BYTES", shape=[1])
    message.raw_input_contents.append(to_raw(np.array([TEXT.encode()], dtype=object), "BYTES"))
    return pb.ModelInferRequest.FromString(message.SerializeToString())


def _runtime_response() -> bytes:
    response = pb.ModelInferResponse(model_name="chnsenti-cls", model_version="1")
    for name, array in OUTPUTS.items():
        response.outputs.add(name=name, datatype=DATATYPES[name], shape=array.shape)
        response.raw_output_contents.append(to_raw(array, DATATYPES[name]))
    return response.SerializeToString()


def _framed(stream_id: int, message: bytes) -> bytes:
    return b"".join(
        (
            frame(HEADERS, END_HEADERS, stream_id, _RESPONSE_HEADERS),
            frame(DATA, 0, stream_id, struct.pack(">BI", 0, len(message)) + message),
            frame(HEADERS, END_HEADERS | END_STREAM, stream_id, _OK_TRAILERS),
        )
    )


def _queue(kind: type) -> None:
    queue: list[Any] = []
    for seq in range(64):
        heapq.heappush(queue, kind(1 << 31, seq, None, 1, None, None, 0, 0))
    while queue:
        heapq.heappop(queue)


if __name__ == "__main__":
    main()
