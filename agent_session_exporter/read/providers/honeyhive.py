"""HoneyHive: its events search (``api: search``, the default), or for older deployments the events
export (``api: events``) or the legacy ``GET {base_url}/session`` (``api: sessions``, seeds/003).

``Authorization: Bearer``. Sessions have no status: a session with an ``end_time`` is *settling*
and is counted once the exporter has seen the same ``end_time`` again ``settle_after`` later by its
own clock (``count/cycle.py``; events are exported late, so an old ``end_time`` proves nothing);
``error`` set means an error outcome. ``start_time``/``end_time`` are Unix milliseconds and
``duration`` is milliseconds. Token and cost rollups are in ``metadata``.

- ``api: search`` (default): ``POST /v1/events/search`` (HoneyHive's v2 reference), filtered to
  ``event_type is session``, ``dateRange {start_time, end_time}`` (ISO, inclusive) from the read's
  start, ``limit`` ≤ 1000, ``page`` from 1; no ``project`` (the key is project-scoped). The route
  "always orders by start_time DESC": newest first, verified on every page, so a steady cycle reads
  what is new. Paging ends on a short page, never on the answer's ``count``, which is not known to be
  the total of the filter: a due sweep reads its band rather than probing it with ``count`` (until a
  test against the real API shows what it is). Pending sessions are looked up with a
  ``session_id is`` filter, one per request (the filters all apply, and ``is`` takes one value), or
  read back to, whichever costs less (``count/read_plan.py: plan_read``).
- ``api: events`` (deprecated by HoneyHive): ``POST /v1/events/export`` filtered to ``event_type`` =
  ``session`` with a server-side ``dateRange`` around the poll window, paged by ``page`` (from 1) until
  a short page (a full page never ends paging, whatever ``totalEvents`` says: a low one once cut the
  read short). Its order is not documented, so the whole window is read every cycle.
- ``api: sessions``: ``GET /session`` with ``project`` and ``limit``; a bare list. It is gone from
  HoneyHive's current OpenAPI: a 404 says to switch to ``api: search``.

The events (search and export) also hold child events (model, tool, chain calls): should a filter let
any through, they are never counted.
"""

from __future__ import annotations

import math
from typing import Any

from agent_session_exporter.model import (
    MAX_FUTURE_SECONDS,
    InvalidRecord,
    KnownRows,
    Outcome,
    PendingRef,
    Phase,
    PollResult,
    PollWindow,
    SessionRecord,
)
from agent_session_exporter.read.fields import (
    MAX_COST_USD,
    MAX_ERROR_TEXT,
    MAX_MILLISECONDS,
    MAX_TOKENS,
    InvalidPage,
    elapsed,
    figure,
    id_or_none,
    lenient_str,
    list_field,
    object_field,
    optional_str,
    require_str,
    time_field,
    time_or_none,
)
from agent_session_exporter.read.http_client import NotFound, UpstreamError
from agent_session_exporter.read.pagers import numbered_pages
from agent_session_exporter.read.providers.base import Provider
from agent_session_exporter.read.providers.honeyhive_pages import EVENTS, SESSIONS, Event, Events, event_key, items_of
from agent_session_exporter.read.providers.honeyhive_source import HoneyhiveSource
from agent_session_exporter.read.typed import Untyped
from agent_session_exporter.timeparse import bounds_at_resolution, to_iso

SEARCH_PATH = "/v1/events/search"
EVENTS_PATH = "/v1/events/export"
SESSIONS_PATH = "/session"
SESSION_FILTER = {"field": "event_type", "operator": "is", "value": "session", "type": "string"}


class HoneyhiveProvider(Provider[HoneyhiveSource]):
    Config = HoneyhiveSource
    #: No status upstream: a session is "running" until it has an end_time that stops moving, then
    #: "ended", with outcome error when ``error`` is set.
    STATUSES = {"running": None, "ended": Outcome.SUCCESS}
    FIGURES = frozenset({"tokens", "cost"})

    @property
    def PROBES(self) -> bool:  # type: ignore[override]  # noqa: N802 - the class flag, per source here
        """The events export counts what matches its filter (``totalEvents``); GET /session does not, and
        the search's ``count`` is not known to be the filter's total yet: a due sweep reads the band."""
        return self.source.api == "events"

    @property
    def PENDING_RECHECK(self) -> str:  # type: ignore[override]  # noqa: N802 - per source here
        """The search filters by ``session_id``: pending sessions are looked up (or read back to, where
        that costs less); the older APIs read back to the oldest."""
        return "lookup" if self.source.api == "search" else "window"

    def describe(self) -> str:
        path = {"search": f"POST {SEARCH_PATH}", "events": f"POST {EVENTS_PATH}", "sessions": f"GET {SESSIONS_PATH}"}
        return f"HoneyHive sessions read with {path[self.source.api]} (api: {self.source.api})"

    async def band_holds(self, low: float, high: float, known: KnownRows) -> bool | None:
        """One event asked for, the sessions of the band counted by the export. Times are whole
        milliseconds: bounds on whole milliseconds select exactly the sessions whose time is in range."""
        body = await self.http.post_json(
            EVENTS_PATH,
            {
                "project": self.source.project,
                "filters": [SESSION_FILTER],
                "limit": 1,
                "page": 1,
                "dateRange": dict(zip(("$gte", "$lte"), bounds_at_resolution(low, high, 1000), strict=True)),
            },
        )
        total = next((body.get(k) for k in ("totalEvents", "count") if isinstance(body, dict) and k in body), None)
        return total == known.count(low, high) if type(total) is int and total >= 0 else None

    async def poll(self, window: PollWindow) -> PollResult:
        if self.source.api == "search":
            return await self._poll_search(window)
        if self.source.api == "events":
            return await self._poll_events(window)
        return await self._poll_sessions(window)

    async def _poll_search(self, window: PollWindow) -> PollResult:
        result = PollResult()
        until = to_iso((window.now if window.now is not None else window.since) + MAX_FUTURE_SECONDS)
        limit = self.source.page_size
        query = {
            "filters": [SESSION_FILTER],
            "dateRange": {"start_time": to_iso(window.since), "end_time": until},
            "limit": limit,
        }
        pages = numbered_pages(
            lambda page: self.http.post_json(SEARCH_PATH, {**query, "page": page}, EVENTS),
            self._read_search,
            first=1,
            max_pages=self.source.max_pages,
            on_limit=self.max_pages_reached,
            prefetch=not window.stop_at_known,
        )  # a steady read mostly ends on page one
        await self.read_newest_first(pages, window, window.since, result, "start_time (the search's own order)")

        async def look_up(ref: PendingRef) -> list[Any]:
            return await self._look_up(ref, until)

        await self.recheck_pending(window.stale_pending, result, look_up)
        return result

    def _read_search(self, body: Any) -> tuple[list[Any], bool]:
        events = items_of(body) if type(body) is Events else list_field(body, "events", SEARCH_PATH)
        return events, len(events) < self.source.page_size  # never the answer's count: not known to be a total

    async def _look_up(self, ref: PendingRef, until: str) -> list[Any]:
        """The pending session's events, by ``session_id is`` its id, from ``overlap`` before its start (a
        session's start is its earliest event's, which a late export may move back). The session event
        starts first, so should child events get through the filter it comes last: read on until it does."""
        query = {
            "filters": [SESSION_FILTER, {"field": "session_id", "operator": "is", "value": ref.session_id, "type": "string"}],
            "dateRange": {"start_time": to_iso(math.floor(ref.key_time) - self.source.overlap), "end_time": until},
            "limit": self.source.page_size,
        }
        events: list[Any] = []
        async for events in numbered_pages(
            lambda page: self.http.post_json(SEARCH_PATH, {**query, "page": page}),
            self._read_search,
            first=1,
            max_pages=self.source.max_pages,
            on_limit=self.max_pages_reached,
        ):
            if any(
                isinstance(event, dict)
                and event.get("event_type", "session") == "session"
                and str(event.get("session_id") or event.get("event_id")) == ref.session_id
                for event in events
            ):
                break
        return events

    async def _poll_sessions(self, window: PollWindow) -> PollResult:
        result = PollResult()
        try:
            body = await self.http.get_json(
                SESSIONS_PATH, {"project": self.source.project, "limit": self.source.page_size}, SESSIONS
            )
        except NotFound as exc:
            raise UpstreamError(
                exc.kind,
                f"{exc}: this HoneyHive has no GET /session (it is gone from the current API); set 'api: search' for this source",
            ) from None
        if not isinstance(body, list):
            raise InvalidPage(SESSIONS_PATH, "a list of sessions")
        rows: list[tuple[str, float]] = []
        await self.read_items(body, result, window=window, rows=rows)
        if len(body) >= self.source.page_size and all(key_time >= window.since for _, key_time in rows):
            self.log.warning(
                "the answer is full and holds nothing older than the window: sessions may be missed;"
                " raise page_size or poll more often",
                page_size=self.source.page_size,
            )
        return result

    async def _poll_events(self, window: PollWindow) -> PollResult:
        result = PollResult()
        since = window.since_with_stale
        until = (window.now if window.now is not None else since) + MAX_FUTURE_SECONDS
        limit = self.source.page_size
        query = {
            "project": self.source.project,
            "filters": [SESSION_FILTER],
            "dateRange": {"$gte": to_iso(since), "$lte": to_iso(until)},
            "limit": limit,
        }

        def read(body: Any) -> tuple[list[Any], bool]:
            events = items_of(body) if type(body) is Events else list_field(body, "events", EVENTS_PATH)
            return events, len(events) < limit  # a full page never ends paging, whatever totalEvents says

        async for events in numbered_pages(
            lambda page: self.http.post_json(EVENTS_PATH, {**query, "page": page}, EVENTS),
            read,
            first=1,
            max_pages=self.source.max_pages,
            on_limit=self.max_pages_reached,
        ):
            await self.read_items(events, result, window=window)
        return result

    def from_typed(self, item: Event) -> SessionRecord | None:
        if item.event_type is not None and item.event_type != "session":
            return None  # a child event, as parse_item says, without making it plain first
        raise Untyped

    def key_of(self, item: Any) -> tuple[str, float] | None:
        if type(item) is Event:
            return event_key(item)
        if type(item) is not dict or item.get("event_type") not in (None, "session"):
            return None
        session_id = id_or_none(item.get("session_id") or item.get("event_id"))
        started_at = time_or_none(item.get("start_time")) if session_id is not None else None
        return None if started_at is None or session_id is None else (session_id, started_at)

    def parse_item(self, item: dict[str, Any]) -> SessionRecord | None:
        event_type = item.get("event_type")
        if event_type is not None and event_type != "session":
            return None  # a child event (model, tool, chain): part of a session, never counted itself
        session_id = item.get("session_id") or item.get("event_id")
        if not session_id:
            raise InvalidRecord("missing_field", "session_id")
        started_at = time_field(item, "start_time", required=True)
        finished_at = time_field(item, "end_time")
        assert started_at is not None
        error = bool(optional_str(item, "error"))
        metadata = object_field(item, "metadata")
        duration_ms = figure(item, "duration", MAX_MILLISECONDS)
        prompt, completion = figure(metadata, "prompt_tokens", MAX_TOKENS), figure(metadata, "completion_tokens", MAX_TOKENS)
        if prompt is None and completion is None:
            total = figure(metadata, "total_tokens", MAX_TOKENS)
            tokens = {"total": total} if total else {}
        else:
            tokens = {kind: value for kind, value in (("input", prompt), ("output", completion)) if value}
        settling = finished_at is not None
        return SessionRecord(
            session_id=require_str({"id": session_id}, "id", allow_int=True),
            status="ended" if settling else "running",
            phase=Phase.SETTLING if settling else Phase.ACTIVE,
            outcome=(Outcome.ERROR if error else Outcome.SUCCESS) if settling else None,
            key_time=started_at,
            started_at=started_at,
            finished_at=finished_at,
            duration_seconds=duration_ms / 1000.0 if duration_ms else elapsed(started_at, finished_at),
            error_text=error,
            error_message=lenient_str(item, "error", MAX_ERROR_TEXT),
            tokens=tokens,
            cost_usd=figure(metadata, "cost", MAX_COST_USD),
            model=metadata.get("model") if isinstance(metadata.get("model"), str) else None,
        )
