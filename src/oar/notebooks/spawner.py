"""Runs inside JupyterHub: each user's JupyterLab as that user's own system account.

JupyterHub's ``LocalProcessSpawner`` (setuid in the child, its own session, re-adopted by pid after
a hub restart) with two changes: the account is ``accounts.system_name(user)`` made on first start,
and the user's studio token reaches the server's (and so the kernels') environment from a file
the studio wrote (root only), never from the hub's database.
"""

from __future__ import annotations

from pathlib import Path

from jupyterhub.spawner import LocalProcessSpawner
from traitlets import Unicode

from oar.notebooks.accounts import ensure_account, system_name

TOKEN_ENV = "OAR_STUDIO_TOKEN"


class SystemUserSpawner(LocalProcessSpawner):
    home_root = Unicode("/home/oar-notebooks", help="parent of the users' homes").tag(config=True)
    user_prefix = Unicode("nb-", help="system account = prefix + studio user name").tag(config=True)
    token_dir = Unicode("", help="folder of <user> files holding each user's studio token").tag(config=True)

    @property
    def system_user(self) -> str:
        return system_name(self.user.name, self.user_prefix)

    async def start(self):  # type: ignore[no-untyped-def]
        ensure_account(self.user.name, Path(self.home_root), self.user_prefix)
        return await super().start()

    def make_preexec_fn(self, name):  # type: ignore[no-untyped-def]
        return super().make_preexec_fn(self.system_user)

    def user_env(self, env):  # type: ignore[no-untyped-def]
        import pwd

        entry = pwd.getpwnam(self.system_user)
        env.update(USER=entry.pw_name, HOME=entry.pw_dir, SHELL=entry.pw_shell or "/bin/bash")
        return env

    def get_env(self):  # type: ignore[no-untyped-def]
        env = super().get_env()
        token_file = Path(self.token_dir) / self.user.name
        if self.token_dir and token_file.is_file():
            env[TOKEN_ENV] = token_file.read_text().strip()
        return env
