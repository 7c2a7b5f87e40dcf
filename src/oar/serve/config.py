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
    token_sha256: str | None = Field(
        None, description="like token, but only its sha256 (hex) is known to the server (--auth-token-file)"
    )
    admin_token: str | None = Field(None, description="token for /v2/repository/* (required to enable it)")
