"""The hub commands against a studio (after ``oar login``): the same tables, read over /api/v1."""

from __future__ import annotations

from typing import Any

from oar._core.errors import OarError


class StudioHub:
    """A logged-in studio's API, answering what ``oar datasets|runs|models`` ask of a local hub."""

    def __init__(self, url: str, token: str) -> None:
        import httpx

        self.url = url
        self._http = httpx.Client(base_url=f"{url}/api/v1", headers={"authorization": f"Bearer {token}"}, timeout=30)

    def get(self, path: str, **params: Any) -> Any:
        return self._call("GET", path, params=params)

    def put(self, path: str, body: dict[str, Any]) -> Any:
        return self._call("PUT", path, json=body)

    def post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        return self._call("POST", path, json=body or {})

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        import httpx

        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise OarError(
                f"cannot reach the studio at {self.url}: {exc} (or `oar logout` to use the local hub)"
            ) from exc
        if response.status_code >= 400:
            try:
                message = response.json()["error"]["message"]
            except (ValueError, KeyError, TypeError):
                message = f"HTTP {response.status_code}"
            raise OarError(f"studio {self.url}: {message}")
        return response.json() if response.content else None

    def all_pages(self, path: str, **params: Any) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        while True:
            page = self.get(path, limit=200, offset=len(items), **params)
            items += page["items"]
            if len(items) >= page["total"] or not page["items"]:
                return items


def studio_hub() -> StudioHub | None:
    """The studio the CLI is logged in to, or ``None`` for the local hub."""
    from oar.cli.studio_command import load_login

    login = load_login()
    return StudioHub(login["url"], login["token"]) if login else None
