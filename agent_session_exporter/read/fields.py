"""Field readers: each reads one field of an API item and raises InvalidRecord with a short reason
(or, for an optional figure, drops that figure alone)."""

from __future__ import annotations

import math
from decimal import Decimal, InvalidOperation
from typing import Any

from agent_session_exporter.model import InvalidRecord
from agent_session_exporter.read.http_client import UpstreamError
from agent_session_exporter.read.typed import Fields
from agent_session_exporter.safetext import safe_text
from agent_session_exporter.timeparse import parse_timestamp


class InvalidPage(UpstreamError):
    """A response whose top-level shape is not what the provider documents."""

    def __init__(self, path: str, expected: str) -> None:
        super().__init__("invalid_shape", f"GET {path}: response is not {expected}")


def require_str(item: dict[str, Any], key: str, *, allow_int: bool = False) -> str:
    """A non-empty string (or, for ids, an integer)."""
    value = item.get(key)
    if value is None or value == "":
        raise InvalidRecord("missing_field", key)
    if not (isinstance(value, str) or (allow_int and isinstance(value, int) and not isinstance(value, bool))):
        raise InvalidRecord("wrong_type", key)
    return str(value)


def optional_str(item: dict[str, Any], key: str) -> str | None:
    value = item.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise InvalidRecord("wrong_type", key)
    return value


#: The longest descriptive string kept (a workflow name; cut again as a label).
MAX_TEXT = 200
#: The longest error text taken from an item: ``safetext.make_safe`` redacts secrets in it, then
#: cuts it to its excerpt; a bound, so a 10 MB error text costs no more.
MAX_ERROR_TEXT = 64 * 1024


def lenient_str(item: dict[str, Any], key: str, limit: int = MAX_TEXT) -> str | None:
    """A descriptive string (a workflow name, an error excerpt) where one is given; anything else,
    even of the wrong type, is None: it labels a session and never decides whether it counts."""
    return lenient_text(item.get(key), limit)


def lenient_text(value: Any, limit: int = MAX_TEXT) -> str | None:
    """``lenient_str`` of a value itself."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value:
        return None
    return value[:limit]


#: Bounds past which one session's figure is not believed: a year, a trillion tokens, a million
#: dollars, a million warnings. They keep every counter finite (``1e400`` or two ``1e308`` would
#: make it +Inf for good).
MAX_SECONDS = 366 * 86400.0
MAX_MILLISECONDS = MAX_SECONDS * 1000.0
MAX_TOKENS = 1e12
#: Below this a number is Unix seconds as it is; above, ms, µs or ns (``timeparse`` tells them apart).
MAX_PLAIN_SECONDS = 1e11
MAX_COST_USD = 1e6
MAX_WARNINGS = 1e6

#: Keys of the figures dropped from the item being parsed (parsing is synchronous: one list serves).
dropped_figures: list[str] = []


def figure(item: dict[str, Any], key: str, maximum: float) -> float | None:
    """An optional figure: a number (or a numeric string, as decimals are serialised) from 0 to
    ``maximum``. Anything else drops this figure only: the session still counts, and the drop is
    noted on its record (``SessionRecord.dropped_figures``). Never raises."""
    value: Any = item.get(key)
    kind = type(value)
    if (kind is int or kind is float) and 0 <= value <= maximum:  # the common case, checked cheaply
        return float(value)
    if value is None or value == "":
        return None
    number = _finite_number(value)
    if number is None or not 0 <= number <= maximum:
        dropped_figures.append(key)
        return None
    return number


def _finite_number(value: Any) -> float | None:
    try:
        if isinstance(value, bool):
            return None
        if isinstance(value, str):
            decimal = Decimal(value.strip())
            if not decimal.is_finite():  # NaN, sNaN, Infinity: no comparison may even be tried on them
                return None
            value = decimal
        if not isinstance(value, (int, float, Decimal)):
            return None
        number = float(value)
    except (InvalidOperation, ValueError, OverflowError):
        return None
    return number if math.isfinite(number) else None


def time_field(item: dict[str, Any], key: str, *, required: bool = False) -> float | None:
    value: Any = item.get(key)
    kind = type(value)
    if (kind is int or kind is float) and 0 <= value < MAX_PLAIN_SECONDS:  # Unix seconds, checked cheaply
        return float(value)
    try:
        parsed = parse_timestamp(value)
    except (ValueError, OverflowError):
        raise InvalidRecord("bad_timestamp", key) from None
    if parsed is None and required:
        raise InvalidRecord("missing_field", key)
    return parsed


def time_or_none(value: Any) -> float | None:
    """``time_field`` of a value itself, None where it would raise (what ``Provider.key_of`` reads)."""
    kind = type(value)
    if (kind is int or kind is float) and 0 <= value < MAX_PLAIN_SECONDS:
        return float(value)
    try:
        return parse_timestamp(value)
    except (ValueError, OverflowError):
        return None


def id_or_none(value: Any) -> str | None:
    """``require_str(..., allow_int=True)`` of a value itself, None where it would raise."""
    kind = type(value)
    if kind is str:
        return value or None
    return str(value) if kind is int or (isinstance(value, int) and not isinstance(value, bool)) else None


def object_field(item: dict[str, Any], key: str, *, required: bool = False) -> dict[str, Any]:
    value = item.get(key)
    if value is None:
        if required:
            raise InvalidRecord("missing_field", key)
        return {}
    if not isinstance(value, dict):
        raise InvalidRecord("wrong_type", key)
    return value


def elapsed(started_at: float | None, finished_at: float | None) -> float | None:
    if started_at is None or finished_at is None or not 0 <= finished_at - started_at <= MAX_SECONDS:
        return None
    return finished_at - started_at


def item_id(item: Any) -> str | None:
    """The id of an invalid item, cut short and made safe, to count and log it once; None where it
    has none."""
    if not isinstance(item, (dict, Fields)):
        return None
    value = item.get("id") or item.get("session_id") or item.get("event_id")
    return safe_text(str(value)[:128]) if isinstance(value, (str, int)) and not isinstance(value, bool) else None


def list_field(body: Any, key: str, path: str) -> list[Any]:
    """The item list of a documented ``{key: [...]}`` page, or InvalidPage."""
    items = body.get(key) if isinstance(body, dict) else None
    if not isinstance(items, list):
        raise InvalidPage(path, f"an object with a list '{key}'")
    return items
