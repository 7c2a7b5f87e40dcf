"""A predictions file, CSV (``id,prediction`` header) or JSON Lines (``{"id": ..., "prediction": ...}``).

Checked in full before anything is recorded, so a bad file costs no quota: every id once, no unknown
id, none missing, each prediction of the metric's type (a label by name or index, a score in [0, 1],
or a finite number). Problems come back one a line (``line 7: id 't00012' repeated (first on line
3)``), at most ``MAX_PROBLEMS`` of them.
"""

from __future__ import annotations

import csv
import io
import json
import math
from typing import Any

from oar._core.errors import InvalidInputError, PayloadTooLargeError

MAX_BYTES = 64 * 1024 * 1024
MAX_PROBLEMS = 10


def _rows(text: str, filename: str) -> list[tuple[int, Any, Any]]:
    """(line number, id, prediction) per data line."""
    stripped = text.lstrip()
    if filename.lower().endswith(".jsonl") or (not filename.lower().endswith(".csv") and stripped.startswith("{")):
        rows = []
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InvalidInputError(f"line {number}: not JSON ({exc.msg})") from None
            if not isinstance(item, dict) or "id" not in item or "prediction" not in item:
                raise InvalidInputError(f'line {number}: expected {{"id": ..., "prediction": ...}}')
            rows.append((number, item["id"], item["prediction"]))
        return rows
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if header is None or [h.strip().lower() for h in header[:2]] != ["id", "prediction"]:
        raise InvalidInputError("line 1: a CSV file starts with the header 'id,prediction' (or send JSON Lines)")
    rows = []
    for record in reader:
        if not record or not any(cell.strip() for cell in record):
            continue
        if len(record) != 2:
            raise InvalidInputError(f"line {reader.line_num}: expected 2 columns (id, prediction), got {len(record)}")
        rows.append((reader.line_num, record[0].strip(), record[1].strip()))
    return rows


def _value(raw: Any, predicts: str, label_names: list[str]) -> Any:
    """The prediction as the scorer takes it, or ValueError with what was expected."""
    if predicts == "label":
        if isinstance(raw, str) and raw in label_names:
            return label_names.index(raw)
        try:
            index = int(raw)
        except (TypeError, ValueError):
            index = -1
        if (
            isinstance(raw, bool)
            or (isinstance(raw, float) and not raw.is_integer())
            or not 0 <= index < len(label_names)
        ):
            raise ValueError(f"a label ({', '.join(label_names)}) or its index 0-{len(label_names) - 1}")
        return index
    try:
        number = float(raw)
    except (TypeError, ValueError):
        number = math.nan
    if isinstance(raw, bool) or not math.isfinite(number):
        raise ValueError("a score between 0 and 1" if predicts == "score" else "a finite number")
    if predicts == "score" and not 0.0 <= number <= 1.0:
        raise ValueError("a score between 0 and 1")
    return number


def parse(content: bytes, filename: str, ids: list[str], label_names: list[str], predicts: str) -> dict[str, Any]:
    """Predictions by id, or ``InvalidInputError`` listing what is wrong, each problem on one line."""
    if len(content) > MAX_BYTES:
        raise PayloadTooLargeError(f"the predictions file is over {MAX_BYTES // (1024 * 1024)} MiB")
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidInputError(f"the predictions file is not UTF-8 text (byte {exc.start})") from None
    known = set(ids)
    seen: dict[str, int] = {}
    out: dict[str, Any] = {}
    problems: list[str] = []
    for number, raw_id, raw_value in _rows(text, filename):
        key = str(raw_id)
        if key not in known:
            problems.append(f"line {number}: unknown id {key[:40]!r}")
        elif key in seen:
            problems.append(f"line {number}: id {key!r} repeated (first on line {seen[key]})")
        else:
            seen[key] = number
            try:
                out[key] = _value(raw_value, predicts, label_names)
            except ValueError as exc:
                problems.append(f"line {number}: prediction {str(raw_value)[:40]!r} is not {exc}")
        if len(problems) >= MAX_PROBLEMS:
            break
    missing = [i for i in ids if i not in seen]
    if missing and len(problems) < MAX_PROBLEMS:
        sample = ", ".join(missing[:5])
        problems.append(f"{len(missing)} of {len(ids)} ids missing (e.g. {sample}); every test id needs one prediction")
    if problems:
        raise InvalidInputError("the predictions file is invalid:\n" + "\n".join(problems))
    return out
