"""The HTTP/2 request header rules of RFC 9113 §8.2 and §8.3, applied to a decoded gRPC request header block.

A request that breaks them is *malformed*: the transport answers it with a stream error (RST_STREAM
``PROTOCOL_ERROR``, §8.1.1) and never hands it to a handler. The transport caches the parsed head of a
block it has seen before, so these checks run once per distinct block, not once per call.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

# §8.2.1: no controls, SP, uppercase, DEL or non-ASCII in a name; a colon only as the pseudo-header prefix.
_BAD_NAME = re.compile(rb"[\x00-\x20\x41-\x5a\x7f-\xff:]")
# §8.2.1: no NUL, CR or LF in a value, and no leading or trailing SP or HTAB.
_BAD_VALUE = re.compile(rb"[\x00\r\n]|\A[ \t]|[ \t]\Z")
# §8.2.2: connection-specific fields have no meaning in HTTP/2.
_CONNECTION_SPECIFIC = frozenset((b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade"))
_REQUEST_PSEUDO = frozenset((b":method", b":scheme", b":path", b":authority"))


class MalformedHeaders(Exception):
    """The header block breaks RFC 9113 §8.2/§8.3; the message says which rule."""


@dataclass(frozen=True)
class RequestHead:
    """What a request's header block says: the method path, the content type and the metadata (read-only)."""

    path: str
    content_type: bytes
    metadata: Mapping[bytes, bytes]
    content_length: int | None = None


def _check_field(name: bytes, value: bytes) -> None:
    if not name:
        raise MalformedHeaders("empty header field name")
    if _BAD_NAME.search(name, 1 if name[0] == 0x3A else 0):
        raise MalformedHeaders(f"invalid header field name {name[:64]!r} (uppercase or not a token)")
    if _BAD_VALUE.search(value):
        raise MalformedHeaders(f"invalid value of header field {name[:64]!r}")


def parse_request(headers: Iterable[tuple[bytes, bytes]]) -> RequestHead:
    """Validate a request header list (§8.3.1) and pick out what the transport needs."""
    pseudo: dict[bytes, bytes] = {}
    metadata: dict[bytes, bytes] = {}
    content_type, content_length = b"", None
    for raw_name, raw_value in headers:
        name, value = bytes(raw_name), bytes(raw_value)
        _check_field(name, value)
        if name[0] == 0x3A:
            if metadata:
                raise MalformedHeaders(f"pseudo-header {name!r} after a regular header field")
            if name not in _REQUEST_PSEUDO:
                raise MalformedHeaders(f"pseudo-header {name!r} is not allowed in a request")
            if name in pseudo:
                raise MalformedHeaders(f"pseudo-header {name!r} appears twice")
            pseudo[name] = value
            continue
        if name in _CONNECTION_SPECIFIC:
            raise MalformedHeaders(f"connection-specific header field {name!r}")
        if name == b"te" and value != b"trailers":
            raise MalformedHeaders("te may only be 'trailers'")
        if name == b"content-type":
            content_type = value
        elif name == b"content-length":
            if not value.isdigit() or content_length is not None:
                raise MalformedHeaders("invalid content-length")
            content_length = int(value)
        metadata[name] = value
    for required in (b":method", b":scheme", b":path"):
        if not pseudo.get(required):
            raise MalformedHeaders(f"request without {required.decode()}")
    return RequestHead(pseudo[b":path"].decode("latin-1"), content_type, metadata, content_length)


def check_trailers(headers: Iterable[tuple[bytes, bytes]]) -> None:
    """A client's trailers: regular fields only (§8.1)."""
    for raw_name, raw_value in headers:
        name = bytes(raw_name)
        _check_field(name, bytes(raw_value))
        if name[0] == 0x3A:
            raise MalformedHeaders(f"pseudo-header {name!r} in trailers")
