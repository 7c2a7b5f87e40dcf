"""Recent activity for the home page: new model versions, runs and alias moves, newest first."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select

from oar.hub import Hub
from oar.hub.orm import AliasEventRow, ModelRow, RegisteredModelRow, RunRow
from oar.studio.services.access import Principal


@dataclass(frozen=True)
class ActivityItem:
    at: datetime
    kind: str  # model | run | alias
    title: str
    url: str
    actor: str | None = None


def recent_activity(hub: Hub, who: Principal | None, limit: int = 20) -> list[ActivityItem]:
    items: list[ActivityItem] = []
    with hub.sessions() as session:
        models = select(ModelRow.name, ModelRow.version, ModelRow.created_at, RegisteredModelRow.owner).join(
            RegisteredModelRow, RegisteredModelRow.name == ModelRow.name
        )
        if who is None:
            models = models.where(RegisteredModelRow.visibility == "public")
        for name, version, at, owner in session.execute(models.order_by(ModelRow.id.desc()).limit(limit)):
            items.append(
                ActivityItem(
                    _aware(at), "model", f"{name}:{version} registered", f"/models/{name}/versions/{version}", owner
                )
            )
        if who is not None:
            for run in session.scalars(select(RunRow).order_by(RunRow.started_at.desc()).limit(limit)):
                # "finished" at its end; a run still going shows when it started ("running" since then)
                at = _aware(run.finished_at or run.started_at)
                items.append(ActivityItem(at, "run", f"{run.id} {run.status}", f"/runs/{run.id}", run.owner))
            for event in session.scalars(select(AliasEventRow).order_by(AliasEventRow.id.desc()).limit(limit)):
                moved = f"v{event.from_version or '-'} → v{event.to_version or '-'}"
                items.append(
                    ActivityItem(
                        _aware(event.at),
                        "alias",
                        f"{event.name}@{event.alias} {moved}",
                        f"/models/{event.name}#aliases",
                        event.actor,
                    )
                )
    return sorted(items, key=lambda i: i.at, reverse=True)[:limit]


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
