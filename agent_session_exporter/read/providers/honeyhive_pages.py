"""HoneyHive's pages decoded typed (msgspec): only the fields the exporter reads are decoded, so the
rest of each event (inputs, outputs, config, feedback, ...) costs no Python object.

Every field is decoded as the plain JSON decoder would decode it (``Any``), so an item read from
its struct (``as_plain``) is the item the plain path reads, and nothing a field may hold makes a
page fall back; only a ``metadata`` that is no object does (then the page is read plain).
"""

from __future__ import annotations

from typing import Any

import msgspec

from agent_session_exporter.read.fields import id_or_none, time_or_none


class Metadata(msgspec.Struct, gc=False):
    prompt_tokens: Any = None
    completion_tokens: Any = None
    total_tokens: Any = None
    cost: Any = None
    model: Any = None


class Event(msgspec.Struct, gc=False):
    """The fields of an event (or a session of GET /session) that ``HoneyhiveProvider`` reads."""

    event_type: Any = None
    id: Any = None  # read only to name an invalid item (``fields.item_id``), as the plain path does
    session_id: Any = None
    event_id: Any = None
    start_time: Any = None
    end_time: Any = None
    duration: Any = None
    error: Any = None
    metadata: Metadata | None = None


class Events(msgspec.Struct, gc=False):
    """A page of the events search or export (``count`` and ``totalEvents`` are not read from it)."""

    events: list[Event]


EVENTS = msgspec.json.Decoder(Events)
SESSIONS = msgspec.json.Decoder(list[Event])


def items_of(body: Any) -> Any:
    """A typed page's events (the body itself otherwise: the plain path checks its shape)."""
    return body.events if type(body) is Events else body


def event_key(item: Event) -> tuple[str, float] | None:
    """``HoneyhiveProvider.key_of`` of a typed event."""
    if item.event_type is not None and item.event_type != "session":
        return None
    session_id = id_or_none(item.session_id or item.event_id)
    started_at = time_or_none(item.start_time) if session_id is not None else None
    return None if started_at is None or session_id is None else (session_id, started_at)
