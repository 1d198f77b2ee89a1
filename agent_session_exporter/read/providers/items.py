"""A page's items made into records (``Provider.parse_items``): the known skipped first, then each
item read typed or whole, made safe, and noted."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Callable, Container, Iterable

from agent_session_exporter.model import InvalidRecord, PollResult, PollWindow, SessionRecord
from agent_session_exporter.read.fields import dropped_figures, item_id
from agent_session_exporter.read.typed import Fields, Untyped, as_plain, is_typed
from agent_session_exporter.safetext import make_safe

if TYPE_CHECKING:
    from agent_session_exporter.read.providers.base import Provider


def parse_page(
    provider: Provider[Any],
    items: Iterable[Any],
    result: PollResult,
    parse: Callable[[dict[str, Any]], SessionRecord | None],
    window: PollWindow | None,
    rows: list[tuple[str, float]] | None,
) -> list[SessionRecord]:
    """``Provider.parse_items``: in order, for each item, its id and key time (``key_of``) checked
    against the ``window`` (what the count passes over makes no record), else the item read typed
    (``from_typed``) or whole (``parse``) and made safe (``safetext.make_safe``); a bad item noted
    invalid, the rest still read."""
    observed = result.observed = provider.clock()
    if not isinstance(items, list):
        items = list(items)
    if len(items) > provider.source.page_size:
        result.invalid.append(("oversized_page", None))
        items = items[: provider.source.page_size]
    records = []
    dropped = dropped_figures
    typed = is_typed(items) and not provider.PARSES_TYPED
    convert = provider.from_typed
    key_of = provider.key_of if window is not None else None
    counted: Container[str] = window.known_finished if window is not None else ()
    cutoff = window.cutoff if window is not None and window.cutoff is not None else -math.inf
    pending: Container[str] = window.known_pending if window is not None else ()
    known_seen = 0
    newest_known = result.newest_known if result.newest_known is not None else -math.inf
    for item in items:
        if (
            key_of is not None
            and (key := key_of(item)) is not None
            and (key[0] in counted or (key[1] < cutoff and key[0] not in pending))
        ):  # PollWindow.ignores, inlined
            known_seen += 1
            if key[0] in counted and key[1] > newest_known:
                newest_known = key[1]
            if rows is not None:
                rows.append(key)
            continue
        dropped.clear()
        try:
            if typed:
                try:
                    record = convert(item)
                except Untyped:
                    item = as_plain(item)  # read item by item, and named by its id should it fail
                    record = parse(item)
            elif not isinstance(item, (dict, Fields)):
                raise InvalidRecord("not_an_object")
            else:
                record = parse(item)  # type: ignore[arg-type]  # a Fields struct reads as its plain object
            sanitized = make_safe(record) if record is not None else ()
        except InvalidRecord as exc:
            result.invalid.append((exc.reason, item_id(item)))
            continue
        if record is not None:
            if dropped:
                record.dropped_figures = tuple(dropped)
            if sanitized:
                record.sanitized = sanitized
            record.observed_at = observed
            records.append(record)
            if rows is not None:
                rows.append((record.session_id, record.key_time))
        elif (row := provider.skipped_row(item)) is not None:
            result.skipped[row[0]] = row[1]
    result.records.extend(records)
    result.known_seen += known_seen
    if newest_known > -math.inf:
        result.newest_known = newest_known
    return records
