"""Open Inference Protocol v2 types and codecs (no I/O)."""

from oar.protocol.codec import InferRequest, RequestedOutput, decode_infer_request, encode_infer_response
from oar.protocol.datatypes import DATATYPES, datatype_of, numpy_dtype

__all__ = [
    "DATATYPES",
    "InferRequest",
    "RequestedOutput",
    "datatype_of",
    "decode_infer_request",
    "encode_infer_response",
    "numpy_dtype",
]
