"""Runs inside JupyterHub: each user's JupyterLab as that user's own system account.

JupyterHub's ``LocalProcessSpawner`` (setuid in the child, its own session, re-adopted by pid after
a hub restart) with two changes: the account is ``accounts.system_name(user)`` made on first start,
and the user's studio token reaches the server's (and so the kernels') environment from a file
the studio wrote (root only), never from the hub's database. Each server runs under the per-user
limits of ``oar.notebooks.resources`` (memory, CPU, processes).
"""

from __future__ import annotations

from pathlib import Path

from jupyterhub.spawner import LocalProcessSpawner
from traitlets import Bool, Float, Integer, Unicode

from oar.notebooks.accounts import ensure_account, system_name
from oar.notebooks.resources import ResourceLimits, preexec, prepare_cgroups, remove_cgroups

TOKEN_ENV = "OAR_STUDIO_TOKEN"


class SystemUserSpawner(LocalProcessSpawner):
    home_root = Unicode("/home/oar-notebooks", help="parent of the users' homes").tag(config=True)
    user_prefix = Unicode("nb-", help="system account = prefix + studio user name").tag(config=True)
    token_dir = Unicode("", help="folder of <user> files holding each user's studio token").tag(config=True)
    memory_mb = Integer(0, help="address space of each process, and RAM of all with cgroups; 0: none").tag(config=True)
    cpus = Float(0.0, help="CPU cores at most for all the user's processes (cgroups only); 0: none").tag(config=True)
    max_processes = Integer(0, help="processes and threads of the user's account; 0: none").tag(config=True)
    cgroups = Bool(True, help="also use a cgroup per account where /sys/fs/cgroup is writable").tag(config=True)

    @property
    def limits(self) -> ResourceLimits:
        return ResourceLimits(self.memory_mb, self.cpus, self.max_processes)

    @property
    def system_user(self) -> str:
        return system_name(self.user.name, self.user_prefix)

    async def start(self):  # type: ignore[no-untyped-def]
        ensure_account(self.user.name, Path(self.home_root), self.user_prefix)
        self._joins = prepare_cgroups(self.system_user, self.limits) if self.cgroups else []
        if self.cpus and not self._joins:
            self.log.warning(
                "no writable cgroup here: %s's CPU is not capped (memory and processes are)", self.user.name
            )
        return await super().start()

    async def stop(self, now=False):  # type: ignore[no-untyped-def]
        await super().stop(now=now)
        remove_cgroups(self.system_user)

    def make_preexec_fn(self, name):  # type: ignore[no-untyped-def]
        return preexec(self.limits, getattr(self, "_joins", []), super().make_preexec_fn(self.system_user))

    def user_env(self, env):  # type: ignore[no-untyped-def]
        import pwd

        entry = pwd.getpwnam(self.system_user)
        env.update(USER=entry.pw_name, HOME=entry.pw_dir, SHELL=entry.pw_shell or "/bin/bash")
        if self.memory_mb:  # glibc reserves 64 MiB of address space per malloc arena (one per thread)
            env.setdefault("MALLOC_ARENA_MAX", "2")
        return env

    def get_env(self):  # type: ignore[no-untyped-def]
        env = super().get_env()
        token_file = Path(self.token_dir) / self.user.name
        if self.token_dir and token_file.is_file():
            env[TOKEN_ENV] = token_file.read_text().strip()
        return env
