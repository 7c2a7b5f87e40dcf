"""The HTTP/2 frame budgets and window rules, without a server (the servers' tests: test_hostile_h2.py)."""

from __future__ import annotations

import pytest

from oar.serve.http2_headers import MalformedHeaders, parse_request
from oar.serve.http2_limits import Budget, Http2Limits, TokenBucket


def test_a_budget_allows_its_burst_then_refuses_until_it_refills() -> None:
    bucket = TokenBucket(Budget(burst=3, rate=2.0), now=0.0)
    assert [bucket.spend(0.0) for _ in range(4)] == [True, True, True, False]
    assert not bucket.spend(0.1)  # 0.2 tokens back: still overdrawn
    assert bucket.spend(2.0)  # a second and more at 2/s: refilled


def test_a_budget_never_holds_more_than_its_burst() -> None:
    bucket = TokenBucket(Budget(burst=2, rate=100.0), now=0.0)
    assert [bucket.spend(1000.0) for _ in range(3)] == [True, True, False]


def test_the_window_always_holds_one_whole_message() -> None:
    limits = Http2Limits(connection_window=1 << 20)
    assert limits.effective_window(4 << 20) == (4 << 20) + 5 + 16 * 1024
    assert Http2Limits().effective_window(1024) == Http2Limits().connection_window


def test_a_valid_grpc_request_head_parses() -> None:
    head = parse_request(
        [(b":method", b"POST"), (b":scheme", b"http"), (b":path", b"/svc/M"), (b"content-type", b"application/grpc")]
    )
    assert head.path == "/svc/M" and head.content_type == b"application/grpc"


@pytest.mark.parametrize(
    "extra",
    [(b"Upper", b"1"), (b"connection", b"close"), (b"te", b"gzip"), (b"x", b"a\r\nb"), (b":status", b"200")],
)
def test_request_heads_breaking_rfc_9113_are_malformed(extra) -> None:
    with pytest.raises(MalformedHeaders):
        parse_request([(b":method", b"POST"), (b":scheme", b"http"), (b":path", b"/svc/M"), extra])
