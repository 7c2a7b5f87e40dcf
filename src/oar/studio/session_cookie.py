"""The ``oar_session`` cookie: ``request.session`` for pages and the API, backed by the server.

A signed-in browser's cookie is ``s.<random id>`` and everything else (the user, the CSRF token, a flash
message) stays in the ``studio_sessions`` table, so ending a row ends every copy of the cookie. An anonymous
visitor (the sign-in page) gets a signed cookie holding only a CSRF token and at most a flash message: no row
is written for visitors, and a signed cookie never carries a user id or a secret worth stealing.

``request.session.clear()`` ends the server-side session (sign-out, a fresh session at sign-in).
"""

from __future__ import annotations

import base64
import json
import re
from typing import Any

import anyio.to_thread
from itsdangerous import BadSignature, TimestampSigner
from starlette.requests import cookie_parser

from oar.studio.services.browser_sessions import BrowserSessions

SESSION_COOKIE = "oar_session"
_SERVER_ID = re.compile(r"s\.([A-Za-z0-9_-]{43})")
_NO_SESSION = ("/static/", "/favicon.ico")  # assets: no database round trip
_ANONYMOUS_KEYS = ("csrf", "flash")


class SessionData(dict[str, Any]):
    """A plain dict that remembers being cleared: the cue to end the session on the server."""

    renewed = False

    def clear(self) -> None:
        super().clear()
        self.renewed = True


class ServerSessions:
    """Pure ASGI middleware putting a :class:`SessionData` in ``scope["session"]`` and saving it after."""

    def __init__(self, app, store: BrowserSessions, secret: str, https_only: bool = False) -> None:  # type: ignore[no-untyped-def]
        self.app = app
        self.store = store
        self.signer = TimestampSigner(secret, salt="oar-anonymous-session")
        self.max_age = int(store.lifetime.total_seconds())
        self.flags = "; path=/; HttpOnly; SameSite=lax" + ("; Secure" if https_only else "")

    async def __call__(self, scope, receive, send) -> None:  # type: ignore[no-untyped-def]
        if scope["type"] not in ("http", "websocket") or scope["path"].startswith(_NO_SESSION):
            if scope["type"] in ("http", "websocket"):
                scope["session"] = SessionData()
            await self.app(scope, receive, send)
            return
        raw = _cookie(scope)
        session_id, data = await self._load(raw)
        session = SessionData(data)
        before = dict(session)
        scope["session"] = session
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def saving(message) -> None:  # type: ignore[no-untyped-def]
            if message["type"] == "http.response.start":
                cookie = await self._save(session, before, session_id, raw)
                if cookie is not None:
                    message.setdefault("headers", [])
                    message["headers"] = [*message["headers"], (b"set-cookie", cookie.encode("latin-1"))]
            await send(message)

        await self.app(scope, receive, saving)

    async def _load(self, raw: str | None) -> tuple[str | None, dict[str, Any]]:
        if not raw:
            return None, {}
        match = _SERVER_ID.fullmatch(raw)
        if match:
            found = await anyio.to_thread.run_sync(self.store.load, match.group(1))
            if found is None:
                return None, {}
            user_id, data = found
            return match.group(1), {**data, "uid": user_id}
        try:
            payload = json.loads(base64.b64decode(self.signer.unsign(raw.encode(), max_age=self.max_age)))
        except (BadSignature, ValueError):
            return None, {}
        return None, {k: v for k, v in payload.items() if k in _ANONYMOUS_KEYS} if isinstance(payload, dict) else {}

    async def _save(
        self, session: SessionData, before: dict[str, Any], session_id: str | None, raw: str | None
    ) -> str | None:
        """The Set-Cookie value, or ``None`` to leave the browser's cookie as it is."""
        user_id = session.get("uid")
        data = {k: v for k, v in session.items() if k != "uid"}
        if session_id and (session.renewed or user_id != before.get("uid")):
            await anyio.to_thread.run_sync(self.store.end, session_id)
            session_id = None
        if isinstance(user_id, int):
            if session_id:
                if session != before:
                    await anyio.to_thread.run_sync(self.store.save, session_id, data)
                return None
            new_id = await anyio.to_thread.run_sync(self.store.start, user_id, data)
            return self._cookie(f"s.{new_id}", self.max_age)
        anonymous = {k: v for k, v in data.items() if k in _ANONYMOUS_KEYS}
        if not anonymous:
            return self._cookie("", 0) if raw else None
        if anonymous == before and raw and not _SERVER_ID.fullmatch(raw):
            return None
        signed = self.signer.sign(base64.b64encode(json.dumps(anonymous).encode())).decode()
        return self._cookie(signed, self.max_age)

    def _cookie(self, value: str, max_age: int) -> str:
        expired = "; expires=Thu, 01 Jan 1970 00:00:00 GMT" if max_age == 0 else ""
        return f"{SESSION_COOKIE}={value}; Max-Age={max_age}{expired}{self.flags}"


def _cookie(scope) -> str | None:  # type: ignore[no-untyped-def]
    for key, value in scope.get("headers", ()):
        if key == b"cookie":
            found = cookie_parser(value.decode("latin-1")).get(SESSION_COOKIE)
            if found:
                return found
    return None
