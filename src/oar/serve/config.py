"""Typed serving options, grouped so ``oar serve`` flags, tests and benchmarks build the same objects.

Each field says how a change takes effect: *reload* means loading the model
again (``POST /v2/repository/models/{m}/load``) applies it, *restart* means
the server process must be restarted.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator

from oar._core.errors import InvalidInputError


class BatchingConfig(BaseModel):
    """How a model's dynamic batcher groups requests (reload).

    The default is adaptive: a batch is cut as soon as the event loop has no
    more requests ready, so a lone request never waits, and under load each
    batch holds what arrived while the previous one ran.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_batch_size: int = Field(64, ge=1, description="most items (rows of dim 0) in one model call")
    max_queue_delay_us: int = Field(
        0, ge=0, description="extra wait for a fuller batch; 0 = adaptive, never wait for company"
    )
    preferred_batch_sizes: tuple[int, ...] = Field(
        (), description="with a queue delay, cut a batch early when it reaches one of these sizes"
    )
    max_queue_size: int = Field(2048, ge=1, description="requests waiting per model; more are shed with 503")
    max_queue_wait_us: int = Field(
        50_000,
        ge=0,
        description="shed (503) a request whose estimated wait in the queue is over this; 0 = shed by count only",
    )
    timeout_us: int = Field(0, ge=0, description="default queue timeout per request (0 = none)")
    instances: int = Field(
        0, ge=0, description="threads running batches in parallel; 0 = run batches on the event loop"
    )


class VersionPolicy(BaseModel):
    """Which versions of a model to serve (reload): ``latest:N``, ``all`` or ``specific:1,3``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: str = "latest"
    count: int = 1
    versions: tuple[int, ...] = ()

    @field_validator("kind")
    @classmethod
    def _known(cls, kind: str) -> str:
        if kind not in ("latest", "all", "specific"):
            raise ValueError("kind must be latest, all or specific")
        return kind

    @classmethod
    def parse(cls, text: str) -> VersionPolicy:
        """``"latest:2"``, ``"all"`` or ``"specific:1,3"``."""
        if text == "all":
            return cls(kind="all")
        match = re.fullmatch(r"latest(?::(\d+))?", text)
        if match:
            count = int(match.group(1) or 1)
            if count < 1:
                raise InvalidInputError("version policy latest:N needs N >= 1")
            return cls(kind="latest", count=count)
        match = re.fullmatch(r"specific:(\d+(?:,\d+)*)", text)
        if match:
            return cls(kind="specific", versions=tuple(int(v) for v in match.group(1).split(",")))
        raise InvalidInputError(f"bad version policy '{text}': use latest[:N], all, or specific:V[,V...]")

    def select(self, available: list[int]) -> list[int]:
        ordered = sorted(available)
        if self.kind == "all":
            return ordered
        if self.kind == "latest":
            return ordered[-self.count :]
        missing = [v for v in self.versions if v not in ordered]
        if missing:
            raise InvalidInputError(
                f"version policy asks for version {', '.join(map(str, missing))}; available: "
                f"{', '.join(map(str, ordered)) or 'none'}"
            )
        return sorted(self.versions)


class SecurityConfig(BaseModel):
    """Bearer tokens (restart). Repository control is off unless ``admin_token`` is set."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    token: str | None = Field(None, description="if set, inference and metadata need 'Authorization: Bearer <token>'")
    token_digests: tuple[str, ...] = Field(
        (), description="like token, but only sha256 hex digests are known: any matching token passes"
    )
    admin_token: str | None = Field(None, description="token for /v2/repository/* (required to enable it)")


class ConnectionLimits(BaseModel):
    """Timeouts and size limits for every client connection, on both ports (restart).

    Defaults follow nginx where it has one (keep-alive 75 s, lingering close 5 s), and are tighter where
    nginx is generous for a web server but an inference API needs no slack: a request head arrives in one
    packet from any real client, so 10 s (nginx: 60 s) is plenty and halves a slowloris's hold time several
    times over. See docs/serving.md, "Security".
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_connections: int = Field(4096, ge=1, description="open connections per worker and port; more are refused")
    keepalive_timeout_s: float = Field(75.0, gt=0, description="close a keep-alive connection idle this long")
    header_timeout_s: float = Field(
        10.0, gt=0, description="a request head (or a new connection's first one) must arrive within this"
    )
    body_timeout_s: float = Field(30.0, gt=0, description="a request body must arrive within this of its head")
    send_timeout_s: float = Field(30.0, gt=0, description="abort a peer that reads none of our replies this long")
    linger_s: float = Field(5.0, gt=0, description="after an error reply, drain the client's input this long")
    max_header_bytes: int = Field(16 * 1024, ge=256, description="request line plus headers; more: 431")
    max_headers: int = Field(100, ge=1, description="header fields per request; more: 431")
    max_url_bytes: int = Field(8 * 1024, ge=16, description="request target; longer: 414")
    write_buffer_bytes: int = Field(
        256 * 1024, ge=1024, description="unsent reply bytes per connection before it stops reading requests"
    )
    max_buffered_body_bytes: int = Field(
        64 * 1024 * 1024,
        ge=64 * 1024,
        description="REST request body bytes all connections of a worker may hold at once (raised to two whole "
        "bodies of --max-body-bytes if lower); past it the largest unfinished bodies are answered 503",
    )
    pressure_timeout_s: float = Field(
        2.0,
        gt=0,
        description="over 3/4 of max_connections open, a connection waiting on its client this long is closed "
        "(oldest first); at the cap the oldest waiting one makes room for a new one",
    )
