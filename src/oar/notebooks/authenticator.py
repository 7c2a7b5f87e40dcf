"""Runs inside JupyterHub: the studio is the identity provider.

``/hub/oar-login?ticket=...`` accepts a one-time ticket the studio signed for a signed-in member or
admin (viewers get none) and sets the hub's cookie; without a ticket it sends the browser to the
studio's notebooks page, which signs the user in (or asks them to) and comes back with a ticket.
There is no password form: no port answers a user the studio has not vouched for.
No one is a JupyterHub admin, so no one (studio admins included) can open another user's server.
"""

from __future__ import annotations

import os
from urllib.parse import urlencode

from jupyterhub.auth import Authenticator
from jupyterhub.handlers import BaseHandler
from jupyterhub.utils import url_path_join
from tornado import web
from traitlets import Unicode

from oar.notebooks.tickets import TicketReader

KEY_ENV = "OAR_NOTEBOOKS_TICKET_KEY"


class StudioLoginHandler(BaseHandler):
    async def get(self) -> None:
        ticket = self.get_argument("ticket", "")
        if not ticket:
            query = urlencode({"next": self.get_argument("next", "")})
            self.redirect(f"{self.authenticator.studio_url}/notebooks?{query}")
            return
        user = await self.login_user({"ticket": ticket})
        if user is None:
            raise web.HTTPError(403, "this notebook link has expired or was already used; open Notebooks in the studio")
        self.redirect(self.get_next_url(user))


class StudioAuthenticator(Authenticator):
    """Trusts tickets signed with the key in ``$OAR_NOTEBOOKS_TICKET_KEY``."""

    studio_url = Unicode(help="the studio's public URL (where users sign in)").tag(config=True)

    def __init__(self, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(**kwargs)
        self._tickets = TicketReader(os.environ[KEY_ENV])

    def login_url(self, base_url: str) -> str:
        return url_path_join(base_url, "oar-login")

    def get_handlers(self, app):  # type: ignore[no-untyped-def]
        return [("/oar-login", StudioLoginHandler)]

    async def authenticate(self, handler, data):  # type: ignore[no-untyped-def]
        name = self._tickets.username(str((data or {}).get("ticket", "")))
        return None if name is None else {"name": name, "admin": False}
