"""Datasets for the API and the pages: catalog, versions, datacard, split sizes and sample rows."""

from __future__ import annotations

from typing import Any

from oar._core.errors import ForbiddenError, InvalidInputError
from oar.hub import DatasetVersion, Hub, Page, RegisteredDataset
from oar.hub.catalog import check_page
from oar.studio.services.access import Principal, require_owner, require_visible

SPLITS = ("train", "valid", "test")


class DatasetService:
    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    def search(self, who: Principal | None, **filters: Any) -> Page:
        return self.hub.dataset_catalog.search(public_only=who is None, **filters)

    def get(self, who: Principal | None, name: str) -> RegisteredDataset:
        entry = self.hub.dataset_catalog.get(name)
        require_visible(who, entry.visibility, "dataset", name)
        return entry

    def versions(self, who: Principal | None, name: str) -> list[DatasetVersion]:
        self.get(who, name)
        return list(reversed(self.hub.datasets.versions(name)))

    def version(self, who: Principal | None, name: str, version: int | None = None) -> DatasetVersion:
        self.get(who, name)
        return self.hub.datasets.get(name, version)

    def samples(
        self, who: Principal | None, name: str, version: int, split: str = "train", limit: int = 20, offset: int = 0
    ) -> Page:
        """A page of the rows stored at registration; empty for versions registered before samples were kept."""
        if split not in SPLITS:
            raise InvalidInputError(f"bad split '{split}': use train, valid or test")
        check_page(limit, offset)
        record = self.version(who, name, version)
        rows = (self.hub.datasets.samples(name, record.version) or {}).get(split, [])
        return Page(rows[offset : offset + limit], len(rows), limit, offset)

    def update(self, who: Principal | None, name: str, *, visibility: str | None = None) -> RegisteredDataset:
        entry = self.get(who, name)
        actor = require_owner(who, entry.owner, f"dataset '{name}'")
        if visibility == "public" and entry.visibility != "public" and not actor.is_admin:
            raise ForbiddenError("only an admin can make a dataset public")
        return self.hub.dataset_catalog.update(name, visibility=visibility)


def split_sizes(record: DatasetVersion) -> dict[str, int]:
    return {s: int(record.counts.get(s, 0)) for s in SPLITS}
