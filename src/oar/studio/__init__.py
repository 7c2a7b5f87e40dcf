"""The studio: oar's platform server (REST API under /api/v1 and a server-rendered web UI) over the hub.

Nothing below this package imports it. ``create_app`` builds the ASGI app; ``oar studio`` runs it.
"""
