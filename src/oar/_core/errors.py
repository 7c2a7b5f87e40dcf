"""One error hierarchy for the whole platform.

Each error carries the HTTP status it maps to, so the server, the CLI and the
client agree on what a failure means without a second lookup table.
"""

from __future__ import annotations


class OarError(Exception):
    """Base of every error oar raises on purpose. The message is for the user."""

    http_status: int = 500


class InvalidInputError(OarError, ValueError):
    """The caller sent something malformed: bad JSON, wrong shape, wrong datatype, empty text."""

    http_status = 400


class PayloadTooLargeError(InvalidInputError):
    """The request body is over the server's limit."""

    http_status = 413


class NotFoundError(OarError, LookupError):
    """A named thing (dataset, run, model, version) does not exist."""

    http_status = 404


class ModelNotFoundError(NotFoundError):
    """No model (or no such version of a model) is registered or served under that name."""


class ConflictError(OarError):
    """The request clashes with the current state (a name already taken, a version still in use)."""

    http_status = 409


class ModelNotReadyError(OarError):
    """The model exists but cannot serve requests right now."""

    http_status = 503


class ServerUnreachableError(OarError, ConnectionError):
    """The client could not connect to the server at all."""

    http_status = 503


class ConnectionFailedError(ServerUnreachableError):
    """The connection was refused, reset or closed before any answer came: the request was not served, so an
    idempotent one (inference) may be sent again, through a balancer to another replica."""


class ParityError(OarError):
    """An exported model disagrees with the model it was exported from."""


class IntegrityError(OarError):
    """Stored content does not match its recorded digest."""


class UnauthorizedError(OarError):
    """A bearer token is required and was missing or wrong."""

    http_status = 401


class ForbiddenError(OarError):
    """The action is switched off on this server (e.g. repository control without an admin token)."""

    http_status = 403


class OverloadedError(OarError):
    """The server shed this request (queue full, or draining); retrying after a short wait is safe."""

    http_status = 503


class RequestTimeoutError(OverloadedError):
    """The request waited in the queue past its timeout and was dropped before it ran."""
