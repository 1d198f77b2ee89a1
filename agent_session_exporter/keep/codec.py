"""The persisted form of a source's totals (JSON), derived from the dataclass's own fields, so a
new counter needs no codec change; older forms (before the ``workflow`` label, or without a field
added since) still load."""

from __future__ import annotations

import functools
import json
from dataclasses import fields
from typing import Any, get_args, get_origin, get_type_hints

from agent_session_exporter.count.state import SourceTotals

#: Fields added after the first persisted form: a state written before one of them loads it empty.
_ADDED_LATER = ("bounds", "names", "active_series", "folded")


def totals_to_json(totals: SourceTotals) -> str:
    """The persisted form, derived from the fields: dicts keyed by tuples become lists of rows."""
    data: dict[str, Any] = {}
    hints = _hints(SourceTotals)
    for spec in fields(totals):
        value = getattr(totals, spec.name)
        if _keyed_by_tuples(hints[spec.name]):
            value = [[*key, count] for key, count in value.items()]
        elif _set_of_tuples(hints[spec.name]):
            value = sorted([*key] for key in value)
        data[spec.name] = value
    return json.dumps(data, separators=(",", ":"))


def totals_from_json(text: str) -> SourceTotals:
    """The inverse of ``totals_to_json``, checking each value against its field's type; ValueError,
    KeyError or TypeError on anything else."""
    raw = _before_workflows(json.loads(text))
    hints = _hints(SourceTotals)
    values: dict[str, Any] = {}
    for spec in fields(SourceTotals):
        if spec.name in raw:
            values[spec.name] = _typed(raw[spec.name], hints[spec.name], spec.name)
        elif spec.name not in _ADDED_LATER:
            raise KeyError(spec.name)
    return SourceTotals(**values)


def _before_workflows(raw: Any) -> Any:
    """Totals persisted before the ``workflow`` label (one number of warnings and errors, no workflow
    in any key) become the totals of workflow ""."""
    if not isinstance(raw, dict) or not isinstance(raw.get("warnings"), (int, float)):
        return raw
    migrated = dict(raw)
    migrated["warnings"], migrated["errors"] = {"": raw["warnings"]}, {"": raw.get("errors")}
    if isinstance(raw.get("finished"), list):
        migrated["finished"] = [["", *row] if isinstance(row, list) else row for row in raw["finished"]]
    for name in ("duration_buckets", "duration_sum", "tokens", "cost"):
        if isinstance(raw.get(name), dict):
            migrated[name] = [["", key, value] for key, value in raw[name].items()]
    return migrated


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    """The field types of a dataclass (resolved once: ``to_json`` runs on every commit)."""
    return get_type_hints(cls)


def _keyed_by_tuples(hint: Any) -> bool:
    return get_origin(hint) is dict and get_origin(get_args(hint)[0]) is tuple


def _set_of_tuples(hint: Any) -> bool:
    return get_origin(hint) is set and get_origin(get_args(hint)[0]) is tuple


def _typed(value: Any, hint: Any, name: str) -> Any:
    """``value`` read from JSON as the type ``hint`` (float, int, str, list[...], dict[...], tuples as rows)."""
    origin, args = get_origin(hint), get_args(hint)
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"{name}: {value!r} is not a number")
        return float(value)
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{name}: {value!r} is not an integer")
        return value
    if hint is str:
        if not isinstance(value, str):
            raise TypeError(f"{name}: {value!r} is not a string")
        return value
    if origin is list:
        if not isinstance(value, list):
            raise TypeError(f"{name}: not a list")
        return [_typed(v, args[0], name) for v in value]
    if _keyed_by_tuples(hint):
        width = len(get_args(args[0]))
        if not isinstance(value, list) or not all(isinstance(row, list) and len(row) == width + 1 for row in value):
            raise TypeError(f"{name}: not a list of rows")
        return {tuple(_typed(k, str, name) for k in row[:width]): _typed(row[width], args[1], name) for row in value}
    if _set_of_tuples(hint):
        width = len(get_args(args[0]))
        if not isinstance(value, list) or not all(isinstance(row, list) and len(row) == width for row in value):
            raise TypeError(f"{name}: not a list of rows")
        return {tuple(_typed(k, str, name) for k in row) for row in value}
    if origin is dict:
        if not isinstance(value, dict):
            raise TypeError(f"{name}: not a mapping")
        return {_typed(k, args[0], name): _typed(v, args[1], name) for k, v in value.items()}
    raise TypeError(f"{name}: unsupported type {hint!r}")
