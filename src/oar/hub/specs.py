"""How a model version is named everywhere: ``name``, ``name:version`` or ``name@alias``.

Parsing needs no database; :meth:`oar.hub.stores.ModelStore.resolve` turns a reference into a
registered version (an alias through the hub's alias table).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from oar._core.errors import InvalidInputError

ALIAS = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}")
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")


@dataclass(frozen=True)
class ModelRef:
    """``version`` and ``alias`` are never both set; neither means "the latest version"."""

    name: str
    version: int | None = None
    alias: str | None = None

    def __str__(self) -> str:
        if self.alias:
            return f"{self.name}@{self.alias}"
        return f"{self.name}:{self.version}" if self.version else self.name


def parse_model_ref(spec: str) -> ModelRef:
    """``"m"``, ``"m:3"`` or ``"m@production"`` -> :class:`ModelRef`; anything else is a clear error."""
    spec = spec.strip()
    if "@" in spec:
        name, _, alias = spec.partition("@")
        if not name or not ALIAS.fullmatch(alias):
            raise InvalidInputError(
                f"bad model '{spec}': use NAME@ALIAS with an alias of letters, digits, '_' and '-' (a letter first)"
            )
        return ModelRef(name, alias=alias)
    name, _, version = spec.partition(":")
    if not name:
        raise InvalidInputError(f"bad model '{spec}': use NAME, NAME:VERSION or NAME@ALIAS")
    if not version:
        return ModelRef(name)
    if not version.isdigit() or int(version) < 1:
        raise InvalidInputError(f"bad model '{spec}': the version must be a positive integer")
    return ModelRef(name, version=int(version))


def check_alias(alias: str) -> str:
    if not ALIAS.fullmatch(alias) or alias.isdigit():
        raise InvalidInputError(f"bad alias '{alias}': letters, digits, '_' and '-', starting with a letter")
    return alias
