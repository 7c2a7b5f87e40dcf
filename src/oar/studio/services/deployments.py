"""Model-as-a-Service: deployments of ``name@alias`` or ``name:version`` as supervised ``oar serve`` processes.

The row in ``deployments`` is the state: it survives a studio restart, and the process is adopted
again (or restarted) when the studio comes back.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from oar._core.errors import ForbiddenError, ModelNotReadyError, NotFoundError
from oar.hub import Hub, ModelVersion, parse_model_ref
from oar.studio.config import StudioConfig
from oar.studio.orm import DeploymentRow
from oar.studio.security import derived_token
from oar.studio.services.access import Principal, require_creator, require_owner, require_signed_in
from oar.studio.services.models import ModelService


@dataclass(frozen=True)
class Deployment:
    id: str
    model: str
    ref: str
    version: int | None
    owner: str | None
    status: str
    endpoint: str | None
    message: str
    created_at: datetime
    updated_at: datetime


class DeploymentService:
    def __init__(self, hub: Hub, models: ModelService, config: StudioConfig) -> None:
        self.hub = hub
        self.models = models
        self.config = config
        models.in_use = self.refs_of

    def list(self, who: Principal | None) -> list[Deployment]:
        require_signed_in(who)
        with self.hub.sessions() as session:
            rows = session.scalars(select(DeploymentRow).order_by(DeploymentRow.created_at.desc())).all()
            return [_deployment(r) for r in rows if r.status != "stopped"]

    def get(self, who: Principal | None, deployment_id: str) -> Deployment:
        require_signed_in(who)
        with self.hub.sessions() as session:
            row = session.get(DeploymentRow, deployment_id)
            if row is None or row.status == "stopped":
                raise NotFoundError(f"no deployment '{deployment_id}'")
            return _deployment(row)

    def token(self, who: Principal | None, deployment_id: str) -> str:
        """The endpoint's bearer token (derived from the studio's key, so it is never stored)."""
        deployment = self.get(who, deployment_id)
        require_owner(who, deployment.owner, f"deployment '{deployment_id}'")
        return derived_token(self.config.secret_key(), f"deployment:{deployment_id}")

    def create(self, who: Principal | None, ref: str) -> Deployment:
        actor = require_creator(who, "deploy a model")
        parsed = parse_model_ref(ref)
        model = self.models.resolve(actor, ref)
        if parsed.alias is None and parsed.version is None:
            ref = model.model_id
        if not self.config.deployments_enabled:
            raise ForbiddenError("deployments are switched off on this studio")
        row = DeploymentRow(
            id=secrets.token_hex(6),
            model=model.name,
            ref=ref,
            version=model.version,
            owner=actor.username,
            status="starting",
            state={},
            message="",
        )
        with self.hub.sessions() as session:
            session.add(row)
            session.commit()
        return _deployment(row)

    def delete(self, who: Principal | None, deployment_id: str) -> None:
        deployment = self.get(who, deployment_id)
        require_owner(who, deployment.owner, f"deployment '{deployment_id}'")
        with self.hub.sessions() as session:
            row = session.get(DeploymentRow, deployment_id)
            assert row is not None
            row.status = "stopped"
            session.commit()

    def refs_of(self, name_or_ref: str) -> list[str]:
        """Live deployments of a model (``name``) or of one alias (``name@alias``)."""
        model = name_or_ref.partition("@")[0]
        with self.hub.sessions() as session:
            rows = session.scalars(
                select(DeploymentRow).where(DeploymentRow.model == model, DeploymentRow.status != "stopped")
            ).all()
            return [r.id for r in rows if "@" not in name_or_ref or r.ref == name_or_ref]

    def figures(self, who: Principal | None, deployment_id: str) -> dict[str, Any]:
        self.get(who, deployment_id)
        return {}

    def predict(self, who: Principal | None, deployment_id: str, inputs: dict[str, Any]) -> dict[str, Any]:
        deployment = self.get(who, deployment_id)
        raise ModelNotReadyError(f"deployment '{deployment.id}' is {deployment.status}, not running yet")

    @staticmethod
    def example_inputs(model: ModelVersion | None) -> dict[str, Any]:
        """A request body that fits the model's signature, for the "try it" box and the client snippet."""
        if model is None:
            return {}
        example: dict[str, Any] = {}
        for spec in model.manifest.get("inputs", []):
            if spec.get("datatype") == "BYTES":
                example[spec["name"]] = (
                    ["这家店的菜很好吃"] if "zh" in model.name or "chn" in model.name else ["great movie"]
                )
            else:
                shape = [d if d > 0 else 1 for d in spec.get("shape", [1])]
                size = 1
                for d in shape[1:]:
                    size *= d
                example[spec["name"]] = [[0.0] * size]
        return example

    def resume(self) -> None:
        """Adopt or restart the deployments recorded in the database (after a studio restart)."""

    def close(self) -> None:
        pass


def _deployment(row: DeploymentRow) -> Deployment:
    return Deployment(
        row.id,
        row.model,
        row.ref,
        row.version,
        row.owner,
        row.status,
        row.endpoint,
        row.message,
        row.created_at,
        row.updated_at,
    )
