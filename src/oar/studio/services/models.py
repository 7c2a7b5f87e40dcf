"""Models for the API and the pages: catalog listings, versions, lineage, aliases and their audit."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from oar._core.errors import ConflictError, ForbiddenError, NotFoundError
from oar.hub import AliasEvent, Hub, ModelVersion, Page, RegisteredModel, parse_model_ref
from oar.hub.housekeeping import OwnerStorage, storage_by_owner
from oar.studio.services.access import Principal, require_owner, require_signed_in, require_visible

AliasListener = Callable[[str, str, int], None]  # (model, alias, new version)


@dataclass(frozen=True)
class FileEntry:
    path: str
    size: int
    digest: str


class ModelService:
    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.alias_listeners: list[AliasListener] = []
        self.in_use: Callable[[str], list[str]] = lambda name: []  # deployments of a model (set by the studio)

    def storage(self, who: Principal | None) -> list[OwnerStorage]:
        """Versions and package bytes per owner: every owner for an admin, a member's own otherwise."""
        me = require_signed_in(who)
        figures = storage_by_owner(self.hub)
        return figures if me.is_admin else [f for f in figures if f.owner == me.username]

    def search(self, who: Principal | None, **filters: Any) -> Page:
        return self.hub.model_catalog.search(public_only=who is None, **filters)

    def get(self, who: Principal | None, name: str) -> RegisteredModel:
        entry = self.hub.model_catalog.get(name)
        require_visible(who, entry.visibility, "model", name)
        return entry

    def versions(
        self, who: Principal | None, name: str, limit: int = 50, offset: int = 0, cursor: str | None = None
    ) -> Page:
        self.get(who, name)
        return self.hub.models.versions(name, limit, offset, cursor)

    def version(self, who: Principal | None, name: str, version: int) -> ModelVersion:
        self.get(who, name)
        return self.hub.models.get(name, version)

    def resolve(self, who: Principal | None, ref: str) -> ModelVersion:
        parsed = parse_model_ref(ref)
        self.get(who, parsed.name)  # visibility first: a hidden model's versions and aliases stay hidden
        return self.hub.models.resolve(parsed)

    def files(self, model: ModelVersion) -> list[FileEntry]:
        """The package's files as the manifest lists them, with their sizes on disk (fetched from the
        artifact store into this machine's cache when the hub keeps packages on an object store)."""
        try:
            root = self.hub.artifacts.fetch(model.digest)
        except NotFoundError:  # files gone from the store: the listing still shows what the manifest names
            root = model.path
        out = []
        for path, digest in sorted(model.manifest.get("files", {}).items()):
            file = root / path
            out.append(FileEntry(path, file.stat().st_size if file.is_file() else 0, digest))
        manifest = root / "manifest.json"
        if manifest.is_file():
            out.append(FileEntry("manifest.json", manifest.stat().st_size, ""))
        return out

    def lineage(self, who: Principal | None, name: str, version: int) -> dict[str, Any]:
        """dataset version -> run -> model version (-> parent and derived versions), as nodes and edges."""
        model = self.version(who, name, version)
        lineage = model.manifest.get("lineage") or {}
        nodes: list[dict[str, Any]] = []
        edges: list[tuple[str, str]] = []
        me = f"model:{model.model_id}"
        dataset = lineage.get("dataset")
        run_id = model.run_id or lineage.get("run_id")
        if dataset:
            ds_id = f"dataset:{dataset['name']}:{dataset.get('version')}"
            nodes.append(
                {
                    "id": ds_id,
                    "kind": "dataset",
                    "label": f"{dataset['name']} v{dataset.get('version')}",
                    "url": f"/datasets/{dataset['name']}?version={dataset.get('version')}",
                }
            )
        if run_id:
            nodes.append({"id": f"run:{run_id}", "kind": "run", "label": run_id, "url": f"/runs/{run_id}"})
            if dataset:
                edges.append((ds_id, f"run:{run_id}"))
            edges.append((f"run:{run_id}", me))
        elif dataset:
            edges.append((ds_id, me))
        if model.parent:
            parent_name, _, parent_version = model.parent.partition(":")
            nodes.append(
                {
                    "id": f"model:{model.parent}",
                    "kind": "model",
                    "label": model.parent,
                    "url": f"/models/{parent_name}/versions/{parent_version}",
                }
            )
            edges.append((f"model:{model.parent}", me))
        nodes.append(
            {
                "id": me,
                "kind": "model",
                "label": model.model_id,
                "current": True,
                "url": f"/models/{model.name}/versions/{model.version}",
            }
        )
        for child in self.hub.models.derived_from(model.model_id):
            child_id = f"model:{child.model_id}"
            nodes.append(
                {
                    "id": child_id,
                    "kind": "model",
                    "label": child.model_id,
                    "url": f"/models/{child.name}/versions/{child.version}",
                }
            )
            edges.append((me, child_id))
        return {"nodes": nodes, "edges": [{"from": a, "to": b} for a, b in edges]}

    def aliases(self, who: Principal | None, name: str):  # type: ignore[no-untyped-def]
        self.get(who, name)
        return self.hub.aliases.of_model(name)

    def alias_history(self, who: Principal | None, name: str, alias: str | None = None) -> list[AliasEvent]:
        self.get(who, name)
        return self.hub.aliases.history(name, alias)

    def set_alias(self, who: Principal | None, name: str, alias: str, version: int) -> AliasEvent | None:
        entry = self.get(who, name)
        actor = require_owner(who, entry.owner, f"model '{name}'")
        event = self.hub.aliases.set(name, alias, version, actor=actor.username)
        if event is not None:
            for listener in self.alias_listeners:
                listener(name, alias, version)
        return event

    def remove_alias(self, who: Principal | None, name: str, alias: str) -> AliasEvent:
        entry = self.get(who, name)
        actor = require_owner(who, entry.owner, f"model '{name}'")
        if self.in_use(f"{name}@{alias}"):
            raise ConflictError(f"'{name}@{alias}' is deployed; undeploy it before removing the alias")
        return self.hub.aliases.remove(name, alias, actor=actor.username)

    def update(
        self,
        who: Principal | None,
        name: str,
        *,
        visibility: str | None = None,
        description: str | None = None,
        tags: list[str] | None = None,
    ) -> RegisteredModel:
        entry = self.get(who, name)
        actor = require_owner(who, entry.owner, f"model '{name}'")
        if visibility == "public" and entry.visibility != "public" and not actor.is_admin:
            raise ForbiddenError("only an admin can make a model public")
        return self.hub.model_catalog.update(name, visibility=visibility, description=description, tags=tags)

    def delete(self, who: Principal | None, name: str) -> int:
        entry = self.get(who, name)
        actor = require_owner(who, entry.owner, f"model '{name}'")
        deployed = self.in_use(name)
        if deployed:
            raise ConflictError(f"model '{name}' is deployed ({', '.join(deployed)}); undeploy it first")
        return self.hub.model_catalog.delete(name, actor=actor.username)
