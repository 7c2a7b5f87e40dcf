"""Configuration files (job files, pools files, competition files) read and checked with one-line answers.

PyYAML's own message spans several lines (context, a quoted excerpt, a caret), and pydantic's names error
types a user never wrote: both become ``key.path: problem`` lines that say what to change.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from oar._core.errors import InvalidInputError


def yaml_problem(exc: yaml.YAMLError) -> str:
    """``line L, column C: what is wrong`` (or PyYAML's first line when it gives no position)."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or (str(exc).splitlines() or ["unreadable YAML"])[0]
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    return f"{where}{problem}"


def read_yaml(path: str | Path, what: str = "") -> Any:
    """The parsed YAML file at ``path`` (``what`` names it in errors, e.g. "pools file")."""
    path = Path(path)
    label = f"{what} {path}".strip()
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InvalidInputError(f"cannot read {label}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise InvalidInputError(f"{label} is not valid YAML: {yaml_problem(exc)}") from None


def validation_problems(exc: ValidationError, prefix: tuple[str, ...] = ()) -> list[str]:
    """One ``key.path: problem`` per error of ``exc``; ``prefix`` is the section the model was read from."""
    problems = []
    for error in exc.errors():
        where = ".".join([*prefix, *(str(part) for part in error["loc"])]) or "(top level)"
        if error["type"] in ("extra_forbidden", "unexpected_keyword_argument"):
            problems.append(f"{where}: unknown key")
        elif error["type"] in ("missing", "missing_argument"):
            problems.append(f"{where}: required key is missing")
        else:
            problems.append(f"{where}: {error['msg'].removeprefix('Value error, ')}")
    return problems


def invalid(source: str, exc: ValidationError, prefix: tuple[str, ...] = ()) -> InvalidInputError:
    """The error for a file whose content does not validate: every problem on its own indented line."""
    lines = "\n".join(f"  {problem}" for problem in validation_problems(exc, prefix))
    return InvalidInputError(f"{source} is invalid:\n{lines}")
