"""One-time sign-in tickets: the studio signs "this is alice", JupyterHub checks and forgets.

A ticket is ``itsdangerous``-signed with a key only the studio and the hub hold, lives
``TICKET_SECONDS`` and works once (the hub remembers the nonces it has seen until they expire).
It is how a signed-in studio user lands in JupyterLab with no second sign-in.
"""

from __future__ import annotations

import secrets
import threading
import time

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

TICKET_SECONDS = 60
_SALT = "oar-notebooks-ticket"


def make_ticket(key: str, username: str) -> str:
    return URLSafeTimedSerializer(key, salt=_SALT).dumps({"u": username, "n": secrets.token_urlsafe(12)})


class TicketReader:
    """Verifies tickets; each one is accepted once."""

    def __init__(self, key: str, max_age: int = TICKET_SECONDS) -> None:
        self._serializer = URLSafeTimedSerializer(key, salt=_SALT)
        self._max_age = max_age
        self._seen: dict[str, float] = {}
        self._lock = threading.Lock()

    def username(self, ticket: str) -> str | None:
        """The user the ticket names, or ``None`` if it is forged, expired or already used."""
        try:
            data = self._serializer.loads(ticket, max_age=self._max_age)
        except (BadSignature, SignatureExpired):
            return None
        if not isinstance(data, dict) or not isinstance(data.get("u"), str) or not isinstance(data.get("n"), str):
            return None
        now = time.monotonic()
        with self._lock:
            self._seen = {n: t for n, t in self._seen.items() if now - t < self._max_age + 5}
            if data["n"] in self._seen:
                return None
            self._seen[data["n"]] = now
        return data["u"]
