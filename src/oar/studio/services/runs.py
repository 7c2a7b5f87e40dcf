"""Runs for the API and the pages: config, final metrics, status, per-step history, comparisons."""

from __future__ import annotations

from typing import Any

from oar._core.errors import InvalidInputError
from oar.hub import Hub, Page, Run
from oar.hub.catalog import check_page
from oar.studio.services.access import Principal, require_signed_in

MAX_COMPARE = 8


class RunService:
    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    def search(self, who: Principal | None, *, limit: int = 50, offset: int = 0, **filters: Any) -> Page:
        require_signed_in(who)
        check_page(limit, offset)
        items, total = self.hub.runs.page(limit=limit, offset=offset, **filters)
        return Page(items, total, limit, offset)

    def get(self, who: Principal | None, run_id: str) -> Run:
        require_signed_in(who)
        return self.hub.runs.get(run_id)

    def compare(self, who: Principal | None, run_ids: list[str]) -> list[Run]:
        ids = list(dict.fromkeys(i for i in run_ids if i))
        if not 2 <= len(ids) <= MAX_COMPARE:
            raise InvalidInputError(f"compare takes 2 to {MAX_COMPARE} different run ids")
        return [self.get(who, run_id) for run_id in ids]


def metric_series(run: Run) -> dict[str, dict[str, list[float]]]:
    """Every numeric metric in the history as {metric: {"x": steps, "y": values}}."""
    series: dict[str, dict[str, list[float]]] = {}
    for record in run.history:
        step = record.get("step")
        if not isinstance(step, (int, float)):
            continue
        for key, value in record.items():
            if key in ("step", "epoch") or isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            curve = series.setdefault(key, {"x": [], "y": []})
            curve["x"].append(step)
            curve["y"].append(value)
    return series
