"""JupyterHub's configuration file (``jupyterhub -f``): every value comes from the settings JSON the
studio wrote (``$OAR_NOTEBOOKS_SETTINGS``) and secrets from the environment; nothing to edit here.

Everything listens on loopback; the proxy is the one door, and every path behind it needs the hub's
cookie (which only a studio ticket gives) or a token.
"""

# ruff: noqa: F821  (``c`` is the config object JupyterHub passes in)
import json
import os
import sys
from pathlib import Path

from oar.notebooks.activity import BUSY_ENV
from oar.notebooks.kernels import write_kernel_specs
from oar.notebooks.limits import LIMIT_ENV
from oar.notebooks.settings import SETTINGS_ENV, NotebookSettings

_run = json.loads(Path(os.environ[SETTINGS_ENV]).read_text())
_settings = NotebookSettings.from_json(_run["settings"])
_state = Path(_run["state_dir"])
_bin = Path(sys.executable).parent

c = get_config()  # type: ignore[name-defined]

# --- where it listens: loopback only ---------------------------------------------------------------
c.JupyterHub.bind_url = f"http://127.0.0.1:{_run['proxy_port']}"
c.JupyterHub.hub_bind_url = f"http://127.0.0.1:{_run['hub_port']}"
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{_run['proxy_api_port']}"
c.ConfigurableHTTPProxy.command = [_run["proxy_command"]]
c.ConfigurableHTTPProxy.pid_file = str(_state / "proxy.pid")  # a new hub ends the proxy a killed one left
c.ConfigurableHTTPProxy.debug = False

# --- its state: root-only files in the state folder -------------------------------------------------
c.JupyterHub.db_url = f"sqlite:///{_state / 'jupyterhub.sqlite'}"
c.JupyterHub.cookie_secret_file = str(_state / "cookie_secret")
c.JupyterHub.pid_file = str(_state / "jupyterhub.pid")
c.JupyterHub.cookie_max_age_days = _settings.session_hours / 24
c.JupyterHub.cleanup_servers = False  # a restarted hub re-adopts the users' running servers
c.JupyterHub.cleanup_proxy = True
c.JupyterHub.allow_named_servers = False
c.JupyterHub.last_activity_interval = _settings.activity_every  # proxy activity -> hub, for the culler

# --- who: the studio vouches for every user ----------------------------------------------------------
c.JupyterHub.authenticator_class = "oar.notebooks.authenticator.StudioAuthenticator"
c.StudioAuthenticator.studio_url = _run["studio_url"]
c.Authenticator.auto_login = True  # no login form: /hub/login goes to the studio
c.Authenticator.allow_all = True  # only studio-signed tickets get in
c.Authenticator.admin_users = set()  # no hub admin: no one may open another user's server
c.JupyterHub.services = [
    {"name": "oar-studio", "api_token": os.environ["OAR_HUB_SERVICE_TOKEN"]},
    {
        "name": "idle-culler",
        "command": [
            sys.executable,
            "-m",
            "oar.notebooks.culler",  # jupyterhub-idle-culler, ended with its hub
            f"--timeout={_settings.idle_timeout}",
            f"--cull-every={_settings.cull_every}",
        ],
    },
]
c.JupyterHub.load_roles = [
    {
        "name": "oar-studio",
        "scopes": ["admin:users", "admin:servers", "access:servers", "list:users", "read:users"],
        "services": ["oar-studio"],
    },
    {
        "name": "idle-culler",
        "scopes": ["list:users", "read:users:activity", "read:servers", "delete:servers"],
        "services": ["idle-culler"],
    },
]

# --- how: each user's JupyterLab as their own system account ---------------------------------------
c.JupyterHub.spawner_class = _settings.spawner
c.SystemUserSpawner.home_root = str(_settings.home_root)
c.SystemUserSpawner.user_prefix = _settings.user_prefix
c.SystemUserSpawner.token_dir = str(_state / "tokens")
c.SystemUserSpawner.memory_mb = _settings.memory_mb
c.SystemUserSpawner.cpus = _settings.cpus
c.SystemUserSpawner.max_processes = _settings.max_processes
c.SystemUserSpawner.cgroups = _settings.cgroups
c.Spawner.cmd = [str(_bin / "jupyterhub-singleuser")]
c.Spawner.default_url = "/lab"
c.Spawner.start_timeout = _settings.start_timeout
c.Spawner.http_timeout = _settings.start_timeout
_share = write_kernel_specs(_settings.home_root)  # kernel specs + the single-user servers' own settings
c.Spawner.environment = {
    "JUPYTER_PATH": str(_share),
    "JUPYTER_CONFIG_PATH": str(_share / "config"),
    "OAR_STUDIO_URL": _run["studio_url"],
    LIMIT_ENV: str(_settings.max_notebook_mb),
    "JUPYTERHUB_ACTIVITY_INTERVAL": str(_settings.activity_every),  # server -> hub activity reports
    BUSY_ENV: str(_settings.activity_every),  # busy kernels count as activity this often
    "PATH": f"{_bin}:/usr/local/bin:/usr/bin:/bin",
}
if _run.get("pythonpath"):
    c.Spawner.environment["PYTHONPATH"] = _run["pythonpath"]
