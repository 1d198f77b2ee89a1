"""Lenient timestamp parsing: the providers disagree on formats and units."""

from __future__ import annotations

import email.utils
import math
from datetime import datetime, timedelta, timezone

#: A Unix number's unit is told by its magnitude: 1e11 s is the year 5138 while 1e11 ms is 1973, and so
#: on by factors of 1000. (upper bound, divisor) from seconds to nanoseconds; larger is not a timestamp.
_UNIT_BY_MAGNITUDE = ((1e11, 1.0), (1e14, 1e3), (1e17, 1e6), (1e20, 1e9))
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def unix_seconds(number: float) -> float:
    """Unix seconds from a Unix time in seconds, milliseconds, microseconds or nanoseconds."""
    for bound, divisor in _UNIT_BY_MAGNITUDE:
        if number < bound:
            return number / divisor
    raise ValueError(f"not a timestamp: {number!r}")


def parse_timestamp(value: object) -> float | None:
    """Return Unix seconds for an ISO-8601 string (``T`` or space, ``Z`` or offset, naive taken
    as UTC), an RFC 822 date (``Fri, 01 May 2026 12:01:01 -0000``, as one Dify version sends), or a
    Unix number in seconds, milliseconds, microseconds or nanoseconds; ``None`` for null/empty.

    Raises ValueError for anything else.
    """
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValueError(f"not a timestamp: {value!r}")
    if isinstance(value, (int, float)):
        number = float(value)
    elif isinstance(value, str):
        seconds = _recent.get(value)
        if seconds is not None:
            return seconds
        text = value.strip()
        if len(text) > 10 and text[4] == "-" and text[:4].isdigit():  # ISO 8601: float() would refuse it
            seconds = _parse_iso(text)
        else:
            try:
                number = float(text)
            except ValueError:
                seconds = _parse_iso(text)
            else:
                return _unix_number(number, value)
        if len(_recent) >= _RECENT_KEPT:
            _recent.clear()
        _recent[value] = seconds
        return seconds
    else:
        raise ValueError(f"not a timestamp: {type(value).__name__}")
    return _unix_number(number, value)


def _unix_number(number: float, value: object) -> float:
    if number != number or number in (float("inf"), float("-inf")) or number < 0:
        raise ValueError(f"not a timestamp: {value!r}")
    return unix_seconds(number)


#: The text timestamps parsed lately and their seconds: a list read again (and each item's key read
#: before its record is made) parses the same texts again. Forgotten whole past ``_RECENT_KEPT``.
_recent: dict[str, float] = {}
_RECENT_KEPT = 20_000


def _parse_iso(text: str) -> float:
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        if not text[:1].isalpha():
            raise
        parsed = email.utils.parsedate_to_datetime(text)  # RFC 822; raises ValueError when it is not one
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.timestamp()


def bounds_at_resolution(low: float, high: float, per_second: int) -> tuple[str, str]:
    """Inclusive ISO bounds that select exactly the times which, cut down to 1/``per_second`` of a
    second as an API shows them, lie in [``low``, ``high``] (the API filtering on the times it stores)."""
    first = math.ceil(low * per_second) / per_second
    last = (math.floor(high * per_second) + 1) / per_second
    return to_iso(first + 1e-7), to_iso(last - 1e-6)


def to_iso(seconds: float) -> str:
    """Unix seconds to ISO-8601 UTC with microseconds and a ``Z``, the form every provider accepts.

    Microseconds are truncated, so as a lower bound it never excludes the instant it came from;
    an upper bound must add a microsecond first.
    """
    moment = _EPOCH + timedelta(microseconds=math.floor(seconds * 1_000_000))
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")
