"""What one HTTP/2 connection may cost the server: stream, header, memory and time limits, and frame budgets.

A hostile peer can make an HTTP/2 server work without asking for anything: reset every stream it opens
(CVE-2023-44487, "rapid reset"), send PINGs, SETTINGS, PRIORITY or empty frames by the ten thousand
(CVE-2019-9512..9518), or a header block that never ends (CVE-2024-27316, CONTINUATION flood). The
transport (``oar.serve.grpc_server``) spends a budget for each such frame and answers a connection that
overdraws it with GOAWAY ``ENHANCE_YOUR_CALM``, as nghttp2, nginx and grpc's C core do. A budget is a
token bucket: ``burst`` frames at once, refilled at ``rate`` per second, so a well-behaved client (a few
keepalive or BDP pings a second, an occasional cancelled call) never comes near it.

Memory is bounded by flow control: the transport advertises ``connection_window`` bytes and gives them
back only once a call is answered, so request bytes buffered or being worked on never exceed it; replies
stop being produced, and the peer stops being read, while ``write_high_water`` bytes wait for it to read.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Budget:
    """A token bucket: ``burst`` events at once, ``rate`` more each second."""

    burst: int
    rate: float


@dataclass(frozen=True)
class Http2Limits:
    """Per-connection HTTP/2 limits of the gRPC port (restart).

    ``connection_window`` is raised to hold at least one whole message of the server's message limit
    (see ``effective_window``), so no valid call can wait for a window that never comes.
    """

    max_concurrent_streams: int = 100  # advertised in SETTINGS; streams beyond it are refused
    max_header_list_size: int = 16 * 1024  # advertised; decoded size (RFC 9113 §6.5.2) across CONTINUATION
    max_continuations: int = 16  # CONTINUATION frames in one header block
    connection_window: int = 8 * 1024 * 1024  # request bytes buffered or in calls, per connection
    write_high_water: int = 1024 * 1024  # unread reply bytes before the peer stops being read
    handshake_timeout: float = 10.0  # seconds for the preface and the client's first SETTINGS
    idle_timeout: float = 300.0  # seconds without an open stream before GOAWAY (PINGs do not count)
    resets: Budget = field(default_factory=lambda: Budget(200, 100.0))  # client resets and refused streams
    stream_errors: Budget = field(default_factory=lambda: Budget(20, 5.0))  # malformed requests we reset
    control: Budget = field(default_factory=lambda: Budget(200, 50.0))  # PING, SETTINGS, PRIORITY, unknown
    window_updates: Budget = field(default_factory=lambda: Budget(2000, 1000.0))
    empty_frames: Budget = field(default_factory=lambda: Budget(100, 10.0))  # empty DATA/HEADERS/CONTINUATION

    def effective_window(self, max_message_bytes: int) -> int:
        """The connection window to advertise: ``connection_window``, or one whole message if larger."""
        return max(self.connection_window, max_message_bytes + 5 + 16 * 1024)


class TokenBucket:
    """Spend one token per event; ``spend`` says False once the budget is overdrawn."""

    __slots__ = ("burst", "rate", "stamp", "tokens")

    def __init__(self, budget: Budget, now: float) -> None:
        self.burst = float(budget.burst)
        self.rate = budget.rate
        self.tokens = self.burst
        self.stamp = now

    def spend(self, now: float) -> bool:
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate) - 1.0
        self.stamp = now
        return self.tokens >= 0.0
