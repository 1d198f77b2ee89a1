"""HoneyHive: the legacy ``GET {base_url}/session`` (seeds/003) or the events API (``api: events``).

``Authorization: Bearer``. Sessions have no status: a session with an ``end_time`` is *settling*
and is counted once the exporter has seen the same ``end_time`` again ``settle_after`` later by its
own clock (``count/cycle.py``; events are exported late, so an old ``end_time`` proves nothing);
``error`` set means an error outcome. ``start_time``/``end_time`` are Unix milliseconds and
``duration`` is milliseconds. Token and cost rollups are in ``metadata``.

- ``api: sessions`` (default): ``GET /session`` with ``project`` and ``limit``; a bare list. It is
  gone from HoneyHive's current OpenAPI: a 404 says to switch to ``api: events``.
- ``api: events``: ``POST /v1/events/export`` filtered to ``event_type`` = ``session`` with a
  server-side ``dateRange`` around the poll window, paged by ``page`` (from 1) until a short page (a
  full page never ends paging, whatever ``totalEvents`` says: a low one once cut the read short). Its
  order is not documented, so the whole window is read every cycle; child events, should the filter
  let any through, are never counted.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from agent_session_exporter.model import InvalidRecord, KnownRows, Outcome, Phase, PollResult, PollWindow, SessionRecord
from agent_session_exporter.read.fields import (
    MAX_COST_USD,
    MAX_MILLISECONDS,
    MAX_TOKENS,
    InvalidPage,
    elapsed,
    figure,
    MAX_ERROR_TEXT,
    lenient_str,
    list_field,
    object_field,
    optional_str,
    require_str,
    time_field,
)
from agent_session_exporter.read.http_client import NotFound, UpstreamError
from agent_session_exporter.read.pagers import numbered_pages
from agent_session_exporter.read.providers.base import Provider
from agent_session_exporter.read.source import Duration, SourceBase
from agent_session_exporter.timeparse import bounds_at_resolution, to_iso

SESSIONS_PATH = "/session"
EVENTS_PATH = "/v1/events/export"
EVENTS_MAX_LIMIT = 7500
SESSION_FILTER = {"field": "event_type", "operator": "is", "value": "session", "type": "string"}
#: Sessions whose start lies this far past the exporter's clock are still asked for (clock skew).
_FUTURE_SLACK = 3600.0


class HoneyhiveSource(SourceBase):
    SESSION_URL_DEFAULT = ("honeyhive.ai", "https://app.honeyhive.ai/projects/{project}/sessions/{session_id}")
    provider: Literal["honeyhive"]
    overlap: Duration = Field(
        600.0, ge=0,
        description="sessions arrive as their events are exported (asynchronously, in batches) "
                    "and are keyed by their earliest event: minutes late is normal")
    project: str = Field(min_length=1)
    api: Literal["sessions", "events"] = Field(
        "sessions", description="sessions: GET /session (gone from the current API); events: POST /v1/events/export")
    page_size: int = Field(1000, ge=1, le=10000, description="at most 7500 with api: events")

    @model_validator(mode="after")
    def _events_limit(self) -> HoneyhiveSource:
        if self.api == "events" and self.page_size > EVENTS_MAX_LIMIT:
            raise ValueError(f"page_size: the events API allows at most {EVENTS_MAX_LIMIT}")
        return self


class HoneyhiveProvider(Provider):
    Config = HoneyhiveSource
    #: No status upstream: a session is "running" until it has an end_time that stops moving, then
    #: "ended", with outcome error when ``error`` is set.
    STATUSES = {"running": None, "ended": Outcome.SUCCESS}
    FIGURES = frozenset({"tokens", "cost"})

    @property
    def PROBES(self) -> bool:  # type: ignore[override]  # noqa: N802 - the class flag, per source here
        """The events export counts what matches its filter (``totalEvents``); GET /session does not."""
        return self.source.api == "events"

    async def band_holds(self, low: float, high: float, known: KnownRows) -> bool | None:
        """One event asked for, the sessions of the band counted by the export. Times are whole
        milliseconds: bounds on whole milliseconds select exactly the sessions whose time is in range."""
        body = await self.http.post_json(EVENTS_PATH, {
            "project": self.source.project, "filters": [SESSION_FILTER], "limit": 1, "page": 1,
            "dateRange": dict(zip(("$gte", "$lte"), bounds_at_resolution(low, high, 1000), strict=True))})
        total = next((body.get(k) for k in ("totalEvents", "count") if isinstance(body, dict) and k in body), None)
        return total == known.count(low, high) if type(total) is int and total >= 0 else None

    async def poll(self, window: PollWindow) -> PollResult:
        if self.source.api == "events":
            return await self._poll_events(window)
        return await self._poll_sessions(window)

    async def _poll_sessions(self, window: PollWindow) -> PollResult:
        result = PollResult()
        try:
            body = await self.http.get_json(SESSIONS_PATH, {"project": self.source.project, "limit": self.source.page_size})
        except NotFound as exc:
            raise UpstreamError(exc.kind, f"{exc}: this HoneyHive has no GET /session (it is gone from the "
                                          "current API); set 'api: events' for this source") from None
        if not isinstance(body, list):
            raise InvalidPage(SESSIONS_PATH, "a list of sessions")
        records = self.parse_items(body, result)
        if len(body) >= self.source.page_size and all(r.key_time >= window.since for r in records):
            self.log.warning("the answer is full and holds nothing older than the window: sessions may be missed;"
                             " raise page_size or poll more often", page_size=self.source.page_size)
        return result

    async def _poll_events(self, window: PollWindow) -> PollResult:
        result = PollResult()
        since = window.since_with_stale
        until = (window.now if window.now is not None else since) + _FUTURE_SLACK
        limit = self.source.page_size
        query = {"project": self.source.project, "filters": [SESSION_FILTER],
                 "dateRange": {"$gte": to_iso(since), "$lte": to_iso(until)}, "limit": limit}

        def read(body: Any) -> tuple[list[Any], bool]:
            events = list_field(body, "events", EVENTS_PATH)
            return events, len(events) < limit  # a full page never ends paging, whatever totalEvents says

        async for events in numbered_pages(lambda page: self.http.post_json(EVENTS_PATH, {**query, "page": page}),
                                           read, first=1, max_pages=self.source.max_pages,
                                           on_limit=self.max_pages_reached):
            self.parse_items(events, result)
        return result

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
            key_time=started_at, started_at=started_at, finished_at=finished_at,
            duration_seconds=duration_ms / 1000.0 if duration_ms else elapsed(started_at, finished_at),
            error_text=error, error_message=lenient_str(item, "error", MAX_ERROR_TEXT),
            tokens=tokens, cost_usd=figure(metadata, "cost", MAX_COST_USD),
            model=metadata.get("model") if isinstance(metadata.get("model"), str) else None,
        )
