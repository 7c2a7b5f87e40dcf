"""Static assets from the installed package, sent the way browsers like them.

Each file is read once (again when it changes on disk) and kept in memory with its ETag and, when it is text,
a gzip copy: plotly.min.js is 4.8 MB as is and 1.5 MB compressed. A client that sends
``Accept-Encoding: gzip`` gets the compressed copy; ``If-None-Match`` with the current ETag gets a 304.
Only assets are compressed here: pages carry CSRF tokens, and compressing them beside reflected input would
open the door to BREACH-style guessing.
"""

from __future__ import annotations

import gzip
import hashlib
import mimetypes
import threading
from dataclasses import dataclass
from pathlib import Path

from fastapi import Request
from fastapi.responses import Response

from oar._core.errors import NotFoundError

_TEXT = ("text/", "application/javascript", "application/json", "image/svg+xml")  # images are compressed already
_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8", ".ico": "image/x-icon"}
_MIN_COMPRESSED = 1024


@dataclass(frozen=True)
class _Asset:
    mtime_ns: int
    size: int
    body: bytes
    gzipped: bytes | None
    etag: str
    media_type: str


class StaticAssets:
    """Serve ``root``'s files (and a few named extra files) with ETag, Cache-Control and gzip."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self._cache: dict[Path, _Asset] = {}
        self._lock = threading.Lock()

    def path_of(self, name: str) -> Path:
        """``name`` under the root, never outside it."""
        path = (self.root / name).resolve()
        if not path.is_relative_to(self.root) or not path.is_file():
            raise NotFoundError(f"no asset '{name}'")
        return path

    def response(self, request: Request, path: Path, cache_control: str = "no-cache") -> Response:
        """``no-cache`` (revalidate with the ETag: a cheap 304) suits files whose URL stays the same across
        oar versions; a longer ``max-age`` suits vendored files."""
        asset = self._load(path)
        headers = {"etag": asset.etag, "cache-control": cache_control, "vary": "Accept-Encoding"}
        if asset.etag in _etags(request.headers.get("if-none-match", "")):
            return Response(status_code=304, headers=headers)
        body = asset.body
        if asset.gzipped is not None and _accepts_gzip(request.headers.get("accept-encoding", "")):
            body = asset.gzipped
            headers["content-encoding"] = "gzip"
        if request.method == "HEAD":
            headers["content-length"] = str(len(body))
            return Response(status_code=200, headers=headers, media_type=asset.media_type)
        return Response(body, headers=headers, media_type=asset.media_type)

    def _load(self, path: Path) -> _Asset:
        stat = path.stat()
        with self._lock:
            cached = self._cache.get(path)
            if cached is not None and cached.mtime_ns == stat.st_mtime_ns and cached.size == stat.st_size:
                return cached
            body = path.read_bytes()
            media_type = _TYPES.get(path.suffix) or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
            compress = media_type.startswith(_TEXT) and len(body) >= _MIN_COMPRESSED
            asset = _Asset(
                stat.st_mtime_ns,
                stat.st_size,
                body,
                gzip.compress(body, compresslevel=6, mtime=0) if compress else None,
                f'"{hashlib.sha256(body).hexdigest()[:32]}"',
                media_type,
            )
            self._cache[path] = asset
            return asset


def _etags(header: str) -> set[str]:
    return {tag.strip().removeprefix("W/") for tag in header.split(",") if tag.strip()}


def _accepts_gzip(header: str) -> bool:
    """``gzip`` (or ``*``) listed without ``q=0``."""
    for item in header.split(","):
        coding, _, params = item.strip().partition(";")
        if coding.strip().lower() in ("gzip", "*"):
            q = params.strip().lower().removeprefix("q=")
            try:
                return not params.strip() or float(q) > 0
            except ValueError:
                return False
    return False
