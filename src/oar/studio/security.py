"""Secrets at rest and at the door: Argon2 hashes for passwords and tokens, the token format,
CSRF tokens, and the sign-in rate limit."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass

from argon2 import Parameters, PasswordHasher, extract_parameters, profiles
from argon2.exceptions import InvalidHashError, VerificationError

from oar._core.errors import OarError

TOKEN_PREFIX = "oar_"


class SecretHasher:
    """Argon2id for passwords and token secrets, with the parameters the studio's configuration names.

    The parameters come only from :class:`~oar.studio.config.StudioConfig` (never from the environment), so a
    deployment cannot be weakened by a stray variable; a test suite passes ``argon2.profiles.CHEAPEST``. A
    hash records its own parameters, so hashes made under one set verify under any other.
    """

    def __init__(self, parameters: Parameters = profiles.RFC_9106_LOW_MEMORY) -> None:
        self.parameters = parameters
        self._hasher = PasswordHasher.from_parameters(parameters)

    def hash(self, secret: str) -> str:
        return self._hasher.hash(secret)

    def verify(self, stored_hash: str, secret: str) -> bool:
        try:
            return self._hasher.verify(stored_hash, secret)
        except (VerificationError, InvalidHashError):
            return False

    def weaker_than_configured(self, stored_hash: str) -> bool:
        """A hash made at a lower cost than this studio's (say, under a test profile): worth redoing at the
        next sign-in, when the password is at hand. Never the other way: a costlier hash is kept."""
        try:
            stored = extract_parameters(stored_hash)
        except InvalidHashError:
            return False
        return stored.memory_cost < self.parameters.memory_cost or stored.time_cost < self.parameters.time_cost


class TooManyAttemptsError(OarError):
    """Too many failed sign-ins from one address for one user: wait and retry."""

    http_status = 429


def new_token() -> tuple[str, str, str]:
    """A fresh bearer token -> (token id, secret, the whole token ``oar_<id>_<secret>``)."""
    token_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    return token_id, secret, f"{TOKEN_PREFIX}{token_id}_{secret}"


def split_token(token: str) -> tuple[str, str] | None:
    """``oar_<id>_<secret>`` -> (id, secret); ``None`` for anything else."""
    if not token.startswith(TOKEN_PREFIX):
        return None
    token_id, sep, secret = token[len(TOKEN_PREFIX) :].partition("_")
    if not sep or len(token_id) != 12 or not secret:
        return None
    return token_id, secret


def fingerprint(token: str) -> str:
    """A fast digest to key the in-memory cache of verified tokens (never stored)."""
    return hashlib.sha256(token.encode()).hexdigest()


def derived_token(key: bytes, purpose: str) -> str:
    """A token that need not be stored: HMAC of the studio's key (used for each deployment's endpoint)."""
    return "oard_" + hmac.new(key, purpose.encode(), hashlib.sha256).hexdigest()[:40]


def new_csrf_token() -> str:
    return secrets.token_urlsafe(32)


def same_secret(a: str | None, b: str | None) -> bool:
    return bool(a) and bool(b) and hmac.compare_digest(str(a), str(b))


@dataclass
class SignInLimiter:
    """At most ``attempts`` failures per (address, username) within ``window`` seconds (in memory)."""

    attempts: int = 5
    window: float = 60.0

    def __post_init__(self) -> None:
        self._failures: dict[tuple[str, str], deque[float]] = {}
        self._lock = threading.Lock()

    def check(self, address: str, username: str) -> None:
        with self._lock:
            recent = self._recent((address, username.lower()))
            if len(recent) >= self.attempts:
                wait = int(self.window - (time.monotonic() - recent[0])) + 1
                raise TooManyAttemptsError(f"too many failed sign-ins; try again in {wait} s")

    def failed(self, address: str, username: str) -> None:
        with self._lock:
            self._recent((address, username.lower())).append(time.monotonic())

    def succeeded(self, address: str, username: str) -> None:
        with self._lock:
            self._failures.pop((address, username.lower()), None)

    def _recent(self, key: tuple[str, str]) -> deque[float]:
        queue = self._failures.setdefault(key, deque())
        while queue and time.monotonic() - queue[0] > self.window:
            queue.popleft()
        return queue
