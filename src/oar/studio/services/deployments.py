"""Model-as-a-Service: ``name@alias`` or ``name:version`` served by a supervised ``oar serve`` process.

Built on ``oar.supervise``: each deployment is a ``ServeDeployment`` (its own ports, bearer token,
readiness check, live figures, zero-failure rollover) watched by one ``Supervisor`` (restart with
back-off). The ``deployments`` row holds the supervisor's state, so a restarted studio adopts the
processes that still run and restarts the rest. Moving an alias rolls its deployments over to the
new version in place: same endpoint, same model id, no failed request.

The endpoint's bearer token is derived from the studio's key (HMAC of the deployment id): never
stored, shown to the deployment's owner, and the served process holds only its SHA-256.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import secrets
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import select

from oar._core.errors import ForbiddenError, InvalidInputError, ModelNotReadyError, NotFoundError, OarError
from oar.hub import Hub, ModelVersion, parse_model_ref
from oar.jobs.ledger import serving_cost_per_million
from oar.jobs.pools import load_pools
from oar.studio.config import StudioConfig
from oar.studio.orm import DeploymentRow
from oar.studio.security import derived_token
from oar.studio.services.access import Principal, require_creator, require_owner, require_signed_in
from oar.studio.services.models import ModelService
from oar.supervise import ReplicaCount, ReplicatedDeployment, ServeDeployment, Supervisor
from oar.supervise.deployment import token_digest
from oar.supervise.replicas import KIND as REPLICATED

log = logging.getLogger("oar.studio.deployments")
LIVE = ("starting", "running", "backoff", "rolling")
Served = ServeDeployment | ReplicatedDeployment


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
    replicas: list[int] | None = None  # [min, max]; None: one process, no balancer


class DeploymentService:
    def __init__(self, hub: Hub, models: ModelService, config: StudioConfig) -> None:
        self.hub = hub
        self.models = models
        self.config = config
        self.root = Path(config.home) / "studio" / "deployments"
        self._running: dict[str, Served] = {}
        self._lock = threading.RLock()
        self._supervisor = Supervisor(on_change=self._supervisor_changed)
        self._threads: list[threading.Thread] = []
        pools = load_pools()  # a deployment holds one node of the on-demand pool: its price, for serving cost
        self.node_price_per_hour = pools.get(pools.on_demand).node_price_per_hour
        models.in_use = self.refs_of
        models.alias_listeners.append(self._alias_moved)

    # --- reading ---------------------------------------------------------------------------------
    def list(self, who: Principal | None) -> list[Deployment]:
        require_signed_in(who)
        with self.hub.sessions() as session:
            query = select(DeploymentRow).where(DeploymentRow.status != "stopped")
            return [_deployment(r) for r in session.scalars(query.order_by(DeploymentRow.created_at.desc()))]

    def live_count(self) -> int:
        """How many deployments are not stopped (their servers run, or will at the next start)."""
        with self.hub.sessions() as session:
            return len(session.scalars(select(DeploymentRow.id).where(DeploymentRow.status != "stopped")).all())

    def get(self, who: Principal | None, deployment_id: str) -> Deployment:
        require_signed_in(who)
        with self.hub.sessions() as session:
            row = session.get(DeploymentRow, deployment_id)
            if row is None or row.status == "stopped":
                raise NotFoundError(f"no deployment '{deployment_id}'")
            return _deployment(row)

    def token(self, who: Principal | None, deployment_id: str) -> str:
        deployment = self.get(who, deployment_id)
        require_owner(who, deployment.owner, f"deployment '{deployment_id}'")
        return self._token(deployment_id)

    def refs_of(self, name_or_ref: str) -> list[str]:
        """Live deployments of a model (``name``) or of one alias (``name@alias``)."""
        model = name_or_ref.partition("@")[0]
        with self.hub.sessions() as session:
            rows = session.scalars(
                select(DeploymentRow).where(DeploymentRow.model == model, DeploymentRow.status != "stopped")
            ).all()
            return [r.id for r in rows if "@" not in name_or_ref or r.ref == name_or_ref]

    def figures(self, who: Principal | None, deployment_id: str) -> dict[str, Any]:
        """Live figures over one second of the server's Prometheus metrics, plus status and endpoint."""
        deployment = self.get(who, deployment_id)
        out: dict[str, Any] = {
            "status": deployment.status,
            "endpoint": deployment.endpoint,
            "version": deployment.version,
        }
        served = self._running.get(deployment_id)
        if isinstance(served, ReplicatedDeployment) and deployment.status in ("running", "rolling"):
            out |= self._replica_figures(served)
        elif served is not None and deployment.status in ("running", "rolling"):
            try:
                figures = served.figures(window=1.0)
            except OarError as exc:
                out["message"] = str(exc)
            else:
                price = self.node_price_per_hour
                out.update(
                    requests_per_second=figures.requests_per_s,
                    p50_ms=figures.p50_ms,
                    p99_ms=figures.p99_ms,
                    errors=figures.errors_total,
                    requests=figures.requests,
                    node_price_per_hour=price,
                    cost_per_million_requests=serving_cost_per_million(price, figures.requests, figures.window_s),
                )
        return out

    def _replica_figures(self, served: ReplicatedDeployment) -> dict[str, Any]:
        """Each replica's figures (node, req/s, p99, CPU) and the deployment's sums; cost at N nodes."""
        rows = served.figures(window=1.0)
        measured = [r for r in rows if "requests" in r]
        requests = sum(r["requests"] for r in measured)
        p99s = [r["p99_ms"] for r in measured if r.get("p99_ms") is not None]
        p50s = [r["p50_ms"] for r in measured if r.get("p50_ms") is not None]
        price = self.node_price_per_hour * len(rows)  # one on-demand node per replica
        return {
            "replicas": rows,
            "replica_count": len(rows),
            "requests_per_second": sum(r["requests_per_second"] for r in measured),
            "p50_ms": max(p50s) if p50s else None,
            "p99_ms": max(p99s) if p99s else None,
            "errors": sum(r["errors"] for r in measured),
            "requests": requests,
            "node_price_per_hour": price,
            "cost_per_million_requests": serving_cost_per_million(price, requests, 1.0),
        }

    # --- changing --------------------------------------------------------------------------------
    def create(self, who: Principal | None, ref: str, replicas: Any = None) -> Deployment:
        """Deploy ``ref``; ``replicas`` (N or [min, max]) above one puts N processes behind a balancer."""
        actor = require_creator(who, "deploy a model")
        if not self.config.deployments_enabled:
            raise ForbiddenError("deployments are switched off on this studio")
        count = None if replicas in (None, "", 1, "1") else ReplicaCount.parse(replicas)
        parsed = parse_model_ref(ref)
        model = self.models.resolve(actor, ref)
        ref = str(parsed) if parsed.alias or parsed.version else model.model_id
        row = DeploymentRow(
            id=secrets.token_hex(6),
            model=model.name,
            ref=ref,
            version=model.version,
            owner=actor.username,
            status="starting",
            state={"replicas": count.to_json()} if count else {},
            message="",
        )
        with self.hub.sessions() as session:
            session.add(row)
            session.commit()
        self._in_background(self._start, row.id, model.name, model.version, count)
        return _deployment(row)

    def delete(self, who: Principal | None, deployment_id: str) -> None:
        """Undeploy: stop the process (in-flight requests finish), free its ports, mark the row stopped."""
        deployment = self.get(who, deployment_id)
        require_owner(who, deployment.owner, f"deployment '{deployment_id}'")
        with self._lock:
            served = self._running.pop(deployment_id, None)
        if served is not None:
            with contextlib.suppress(OarError):
                self._supervisor.unwatch(deployment_id, stop=False)
            served.undeploy()
        elif (row_state := self._state_of(deployment_id)).get("kind") == REPLICATED:
            with contextlib.suppress(OarError):  # never adopted (failed start): stop what it left running
                ReplicatedDeployment.from_state(row_state).undeploy()
        self._update(deployment_id, status="stopped", endpoint=None, port=None, message="undeployed")

    def predict(self, who: Principal | None, deployment_id: str, inputs: dict[str, Any]) -> dict[str, Any]:
        """One call to the deployed endpoint through the real client, with the deployment's token."""
        from oar.client import ModelClient

        deployment = self.get(who, deployment_id)
        served = self._running.get(deployment_id)
        if served is None or deployment.status not in ("running", "rolling"):
            raise ModelNotReadyError(
                f"deployment '{deployment_id}' is not ready ({deployment.status}); try again in a few seconds"
            )
        model = self.hub.models.get(deployment.model, served.version)
        with ModelClient(served.endpoint, token=self._token(deployment_id), timeout=30) as client:
            if model.task == "text-classification":
                result: Any = client.predict(deployment.model, inputs=inputs)
                return {"model_id": f"{model.name}:{model.version}", "outputs": result}
            if model.task == "text-to-image":  # a PNG: sent to the page as base64 text, shown as an image
                prompt, parameters = _generation_inputs(inputs)
                png = client.predict(deployment.model, inputs={"prompt": prompt}, parameters=parameters)
                image = base64.b64encode(png).decode("ascii")  # type: ignore[arg-type]
                return {"model_id": model.model_id, "outputs": {"image_png_base64": image}}
            tensors = _tensors(model, inputs)
            outputs = client.infer(deployment.model, tensors)
        return {"model_id": model.model_id, "outputs": {k: np.asarray(v).tolist() for k, v in outputs.items()}}

    @staticmethod
    def example_inputs(model: ModelVersion | None) -> dict[str, Any]:
        """A request that fits the model's signature, for the "try it" box and the client snippet."""
        if model is None:
            return {}
        if model.task == "text-to-image":
            return {"prompt": "a lighthouse on a cliff at dusk", "parameters": {"steps": 20, "seed": 0}}
        example: dict[str, Any] = {}
        for spec in model.manifest.get("inputs", []):
            if spec.get("datatype") == "BYTES":
                example[spec["name"]] = ["这家店的菜很好吃"] if "chn" in model.name else ["a fine example"]
            else:
                shape = [d if d > 0 else 1 for d in spec.get("shape", [1])]
                example[spec["name"]] = np.zeros(shape).tolist()
        return example

    # --- life of the studio ----------------------------------------------------------------------
    def resume(self) -> None:
        """After a (re)start: adopt each live deployment's process, or restart it; follow moved aliases."""
        with self.hub.sessions() as session:
            rows = session.scalars(select(DeploymentRow).where(DeploymentRow.status.in_(LIVE))).all()
        for row in rows:
            if not row.state.get("kind"):
                count = ReplicaCount.parse(row.state["replicas"]) if row.state.get("replicas") else None
                self._in_background(self._start, row.id, row.model, row.version, count)
                continue
            try:
                served = _served_from_state(row.state)
            except OarError as exc:
                self._update(row.id, status="failed", message=str(exc))
                continue
            with self._lock:
                self._running[row.id] = served
            if isinstance(served, ReplicatedDeployment):
                served.on_change = self._replicas_changed(row.id)
                served.resume()
            else:
                self._supervisor.watch(row.id, served.spawner, ready=served.ready)
            ref = parse_model_ref(row.ref)
            if ref.alias:
                self._in_background(self._follow_alias, row.id, ref.name, ref.alias)
        self._supervisor.start()

    def close(self, stop_processes: bool = False) -> None:
        """Stop supervising; the served processes keep running (a restarted studio adopts them) unless
        ``stop_processes``."""
        for thread in list(self._threads):
            thread.join(60)
        self._supervisor.close()
        for served in list(self._running.values()):
            if isinstance(served, ReplicatedDeployment):
                served.close()
        if stop_processes:
            with self._lock:
                running = list(self._running.items())
                self._running.clear()
            for _, served in running:
                served.undeploy()

    def stop_all(self) -> list[str]:
        """Stop every live deployment's server and mark it stopped, so no later start brings it back
        (``oar studio stop --all``, with the studio itself already stopped: nothing supervises them then)."""
        with self.hub.sessions() as session:
            rows = session.scalars(select(DeploymentRow).where(DeploymentRow.status != "stopped")).all()
        for row in rows:
            if row.state.get("kind"):
                try:
                    _served_from_state(row.state).undeploy()
                except OarError as exc:  # a malformed record: nothing to stop, the row still ends
                    log.warning("deployment %s: %s", row.id, exc)
            self._update(row.id, status="stopped", endpoint=None, port=None, message="stopped with the studio")
        return [row.id for row in rows]

    # --- internals -------------------------------------------------------------------------------
    def _start(self, deployment_id: str, model: str, version: int, count: ReplicaCount | None = None) -> None:
        if count is not None:
            self._start_replicated(deployment_id, model, version, count)
            return
        try:
            taken = self._taken_ports()
            served, _ = ServeDeployment.create(
                model,
                version,
                self.root / deployment_id,
                taken_ports=taken,
                home=self.config.home,
            )
            self._install_token(served, deployment_id)
            state = served.start(timeout=120)
        except OarError as exc:
            log.warning("deployment %s failed to start: %s", deployment_id, exc)
            self._update(deployment_id, status="failed", message=str(exc)[-2000:])
            return
        self._running_now(deployment_id, served, state, version)
        self._supervisor.watch(deployment_id, served.spawner, ready=served.ready)
        self._supervisor.start()  # idempotent

    def _start_replicated(self, deployment_id: str, model: str, version: int, count: ReplicaCount) -> None:
        """Replicas (on the studio's Ray cluster when it has one) behind one balancer endpoint."""
        ray = None
        if self.config.ray_address:
            ray = {"address": self.config.ray_address, "resources": dict(self.config.ray_resources)}
        try:
            served, _ = ReplicatedDeployment.create(
                model, version, self.root / deployment_id, count, self._taken_ports(), self.config.home, ray=ray
            )
            served.token_sha256 = token_digest(self._token(deployment_id))
            served.on_change = self._replicas_changed(deployment_id)
            state = served.start(timeout=120)
        except OarError as exc:
            log.warning("deployment %s failed to start: %s", deployment_id, exc)
            self._update(deployment_id, status="failed", message=str(exc)[-2000:])
            return
        self._running_now(deployment_id, served, state, version)

    def _running_now(self, deployment_id: str, served: Any, state: dict[str, Any], version: int) -> None:
        """Record a deployment (one process or replicas) that started and answers at its endpoint."""
        with self._lock:
            self._running[deployment_id] = served
        self._update(
            deployment_id,
            status="running",
            state=state,
            endpoint=served.endpoint,
            port=served.port,
            version=version,
            message="",
        )

    def _replicas_changed(self, deployment_id: str) -> Any:
        def store(state: dict[str, Any]) -> None:
            self._update(deployment_id, state=state)

        return store

    def _state_of(self, deployment_id: str) -> dict[str, Any]:
        with self.hub.sessions() as session:
            row = session.get(DeploymentRow, deployment_id)
            return dict(row.state) if row is not None and row.state else {}

    def _alias_moved(self, model: str, alias: str, version: int) -> None:
        for deployment_id in self.refs_of(f"{model}@{alias}"):
            self._in_background(self._follow_alias, deployment_id, model, alias)

    def _follow_alias(self, deployment_id: str, model: str, alias: str) -> None:
        """Roll a deployment of ``model@alias`` over to where the alias points now."""
        try:
            version = self.hub.models.resolve(f"{model}@{alias}").version
        except OarError as exc:
            self._update(deployment_id, message=str(exc))
            return
        with self._lock:
            served = self._running.get(deployment_id)
            if served is None or served.version == version:
                return
            self._update(deployment_id, status="rolling", message=f"rolling over to v{version}")
            try:
                state = served.rollover(version)  # the deployment probes the new version with its own token
            except OarError as exc:
                self._update(deployment_id, status="running", message=f"rollover to v{version} failed: {exc}")
                return
            self._update(
                deployment_id, status="running", state=state, version=version, message=f"rolled over to v{version}"
            )

    def _supervisor_changed(self, key: str, record: dict[str, Any]) -> None:
        status = record.get("status")
        served = self._running.get(key)
        if status not in ("running", "starting", "backoff", "failed") or not isinstance(served, ServeDeployment):
            return
        self._update(key, status=status, state=served.state())

    def _install_token(self, served: ServeDeployment, deployment_id: str) -> None:
        """Swap the supervisor's random token for the derived one (only its digest reaches the server)."""
        served.set_token_digest(token_digest(self._token(deployment_id)))

    def _token(self, deployment_id: str) -> str:
        return derived_token(self.config.secret_key(), f"deployment:{deployment_id}")

    def _taken_ports(self) -> list[int]:
        with self.hub.sessions() as session:
            rows = session.scalars(select(DeploymentRow).where(DeploymentRow.status != "stopped")).all()
            states = [r.state for r in rows] + [m for r in rows for m in r.state.get("members", {}).values()]
            return [p for state in states for p in (state.get("port"), state.get("grpc_port")) if p]

    def _update(self, deployment_id: str, **changes: Any) -> None:
        with self.hub.sessions() as session:
            row = session.get(DeploymentRow, deployment_id)
            if row is None or (row.status == "stopped" and changes.get("status") != "stopped"):
                return
            for key, value in changes.items():
                setattr(row, key, value)
            row.updated_at = datetime.now(UTC)
            session.commit()

    def _in_background(self, target: Any, *args: Any) -> None:
        thread = threading.Thread(target=self._guarded, args=(target, *args), daemon=True)
        self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        thread.start()

    @staticmethod
    def _guarded(target: Any, *args: Any) -> None:
        try:
            target(*args)
        except Exception:  # a background step must never take the studio down; the row says what failed
            log.exception("deployment task %s failed", getattr(target, "__name__", target))


def _tensors(model: ModelVersion, inputs: dict[str, Any]) -> dict[str, np.ndarray]:
    from oar.protocol.datatypes import numpy_dtype

    specs = {s["name"]: s for s in model.manifest.get("inputs", [])}
    unknown = set(inputs) - set(specs)
    if unknown or not inputs:
        raise InvalidInputError(f"inputs must be {', '.join(sorted(specs))}; got {', '.join(sorted(inputs)) or 'none'}")
    try:
        return {name: np.asarray(value, dtype=numpy_dtype(specs[name]["datatype"])) for name, value in inputs.items()}
    except (ValueError, TypeError) as exc:
        raise InvalidInputError(f"bad input values: {exc}") from None


def _served_from_state(state: dict[str, Any]) -> Served:
    if state.get("kind") == REPLICATED:
        return ReplicatedDeployment.from_state(state)
    return ServeDeployment.from_state(state)


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
        (row.state or {}).get("replicas"),
    )


def _generation_inputs(inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """``{"prompt": str, "parameters": {...}}`` from the "try it" box (a one-element list of prompts too)."""
    prompt = inputs.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1:
        prompt = prompt[0]
    parameters = inputs.get("parameters", {})
    if not isinstance(prompt, str) or not isinstance(parameters, dict) or set(inputs) - {"prompt", "parameters"}:
        raise InvalidInputError('a text-to-image model takes {"prompt": "...", "parameters": {"steps": 20, ...}}')
    return prompt, parameters
