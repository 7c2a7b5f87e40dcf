"""Storage figures for the API and the page: an admin sees every owner's bytes, a member their own."""

from __future__ import annotations

from oar.hub import Hub
from oar.hub.usage import StorageReport
from oar.studio.services.access import Principal, require_signed_in


class StorageService:
    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    def report(self, who: Principal | None) -> StorageReport:
        """From the sizes recorded at registration: a grouped query, no artifact file is read."""
        me = require_signed_in(who)
        return self.hub.storage(None if me.is_admin else me.username)
