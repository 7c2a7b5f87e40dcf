"""Notebooks: one supervised JupyterHub whose identity provider is the studio.

The pieces run in three processes, and this package holds the code of each:

- the studio (``hub.NotebookHub``): writes the hub's settings, starts JupyterHub through ``oar.supervise``
  (restarted when it dies; user servers survive and are re-adopted), and drives it over its REST API;
- JupyterHub (``jupyterhub_config``, ``authenticator``, ``spawner``): trusts one-time tickets the studio
  signs (``tickets``), starts each user's JupyterLab as that user's own system account;
- the user's JupyterLab and kernels (``limits``, ``kernel``): the notebook size limit, and ``oar`` in a
  kernel talking to the studio with the user's own token.

Nothing here imports ``oar.studio``. See ``docs/notebooks.md``.
"""

from oar.notebooks.settings import NotebookSettings

__all__ = ["NotebookSettings"]
