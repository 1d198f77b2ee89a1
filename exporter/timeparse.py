"""Lenient timestamp parsing: the providers disagree on formats and units."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone

#: Numbers above this are Unix milliseconds (1e11 s is the year 5138; 1e11 ms is 1973).
_MILLIS_THRESHOLD = 1e11
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def parse_timestamp(value: object) -> float | None:
    """Return Unix seconds for an ISO-8601 string (``T`` or space, ``Z`` or offset,
    naive taken as UTC), Unix seconds or Unix milliseconds; ``None`` for null/empty.

    Raises ValueError for anything else.
    """
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValueError(f"not a timestamp: {value!r}")
    if isinstance(value, (int, float)):
        number = float(value)
    elif isinstance(value, str):
        text = value.strip()
        try:
            number = float(text)
        except ValueError:
            return _parse_iso(text)
    else:
        raise ValueError(f"not a timestamp: {type(value).__name__}")
    if number != number or number in (float("inf"), float("-inf")) or number < 0:
        raise ValueError(f"not a timestamp: {value!r}")
    return number / 1000.0 if number > _MILLIS_THRESHOLD else number


def _parse_iso(text: str) -> float:
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.timestamp()


def to_iso(seconds: float) -> str:
    """Unix seconds to ISO-8601 UTC with microseconds and a ``Z``, the form every provider accepts.

    Microseconds are truncated, so as a lower bound it never excludes the instant it came from;
    an upper bound must add a microsecond first.
    """
    moment = _EPOCH + timedelta(microseconds=math.floor(seconds * 1_000_000))
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")
