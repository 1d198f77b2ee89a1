"""Whatabot: ``GET {base_url}/sessions/logs`` (seeds/000).

Header ``X-Api-Key``; zero-based ``page``, ``size`` 1..100; a Spring page object whose ``last``
marks the end. There is no "since" filter, so the list is read newest first
(``orderBy=startedAt&direction=DESC``; the default direction is ASC) and paging stops once a page
reaches back past the window. The sort column ``startedAt`` is not documented, so the order is
verified on every page: an API that ignores it is read to its last page instead. ``dateRange``
narrows the server's work to a preset that surely covers the window. Pending sessions older than
the window are re-read with the ``sessionId`` filter.

The list has no count per time range, but it has offsets: instead of a due sweep, the exporter
asks for the one row at the offset of the rows it knows from the band's start on (``size=1``). If
nothing was written late, that row is older than the band (or there is none).
"""

from __future__ import annotations

import time
from typing import Any, Literal

import msgspec
from pydantic import Field

from agent_session_exporter.model import (
    InvalidRecord,
    KnownRows,
    Outcome,
    PendingRef,
    PollResult,
    PollWindow,
    SessionRecord,
    classify,
)
from agent_session_exporter.read.fields import (
    MAX_WARNINGS,
    elapsed,
    figure,
    id_or_none,
    lenient_str,
    list_field,
    require_str,
    time_field,
    time_or_none,
)
from agent_session_exporter.read.http_client import HeaderAuth
from agent_session_exporter.read.pagers import numbered_pages
from agent_session_exporter.read.providers.base import Provider
from agent_session_exporter.read.providers.lookups import FilterIgnored
from agent_session_exporter.read.source import SourceBase
from agent_session_exporter.read.typed import Fields

PATH = "/sessions/logs"
STATUSES: dict[str, Outcome | None] = {
    "running": None,
    "active": None,
    "completed": Outcome.SUCCESS,
    "error": Outcome.ERROR,
    "timeout": Outcome.TIMEOUT,
}
_DATE_RANGES = ((7, "last7days"), (15, "last15days"), (30, "last30days"))


def date_range_for(since: float, now: float) -> str | None:
    """The smallest preset that covers ``since`` with a day to spare (presets may be calendar days)."""
    age_days = (now - since) / 86400.0
    for days, preset in _DATE_RANGES:
        if age_days + 1 < days:
            return preset
    return None


class _Session(Fields):
    """The fields of a session log that ``parse_item`` reads (each as the plain decoder decodes it)."""

    id: Any = None
    status: Any = None
    startedAt: Any = None  # noqa: N815 - the API's names
    finishedAt: Any = None  # noqa: N815
    warnings: Any = None
    flowId: Any = None  # noqa: N815


class _Page(msgspec.Struct, gc=False):
    content: list[_Session]
    last: Any = None
    number: Any = None
    totalPages: Any = None  # noqa: N815


PAGE = msgspec.json.Decoder(_Page)


def read_page(body: Any) -> tuple[list[Any], bool]:
    if type(body) is _Page:
        body = {"content": body.content, "last": body.last, "number": body.number, "totalPages": body.totalPages}
    items = list_field(body, "content", PATH)
    last = body.get("last")
    if not isinstance(last, bool):
        number, total = body.get("number"), body.get("totalPages")
        last = not (isinstance(number, int) and isinstance(total, int) and number + 1 < total)
    return items, last


class WhatabotSource(SourceBase):
    provider: Literal["whatabot"]
    page_size: int = Field(100, ge=1, le=100)
    workspace_id: str | None = Field(None, description="only this workspace's sessions")


class WhatabotProvider(Provider[WhatabotSource]):
    AUTH = HeaderAuth("X-Api-Key", "")
    Config = WhatabotSource
    STATUSES = STATUSES
    FIGURES = frozenset({"warnings"})
    PENDING_RECHECK = "lookup"
    PROBES = True
    PARSES_TYPED = True

    def _params(self, since: float, now: float | None) -> dict[str, Any]:
        return {
            "orderBy": "startedAt",
            "direction": "DESC",
            "workspaceId": self.source.workspace_id,
            "dateRange": date_range_for(since, now or time.time()),
        }

    async def poll(self, window: PollWindow) -> PollResult:
        result = PollResult()
        params = {"size": self.source.page_size, **self._params(window.since, window.now)}
        pages = numbered_pages(
            lambda page: self.http.get_json(PATH, {**params, "page": page}, PAGE),
            read_page,
            first=0,
            max_pages=self.source.max_pages,
            on_limit=self.max_pages_reached,
            page_size=self.source.page_size,
        )
        await self.read_newest_first(pages, window, window.since, result, "orderBy")
        await self.recheck_pending(window.stale_pending, result, self.fetch_one)
        return result

    async def band_holds(self, low: float, high: float, known: KnownRows) -> bool | None:
        """Newest first, the rows from ``low`` on come first: the rows added since the read (newer
        than any known, counted on the first page), then the known ones, then any written late. So
        with nothing late, the row at offset (added + known from ``low`` on) is older than ``low``,
        or there is none. The first page is asked for before that row, so a row added in between
        can only make the answer False, never wrongly True."""
        params = self._params(low, None)
        top, _ = read_page(await self.http.get_json(PATH, {**params, "size": self.source.page_size, "page": 0}))
        keys = [key_time for item in top if (key_time := self._key(item)) is not None]
        newest = known.newest
        if len(keys) < len(top) or keys != sorted(keys, reverse=True) or newest is None:
            return None
        added = sum(1 for key_time in keys if key_time > newest)
        if added == len(keys) == self.source.page_size:
            return None  # more added than one page shows
        offset = added + known.count(low)
        body = await self.http.get_json(PATH, {**params, "size": 1, "page": offset})
        items, _ = read_page(body)
        total = body.get("totalElements")
        if type(total) is int and total < offset:
            return None  # fewer rows than the exporter knows: not the list it read
        if not items:
            return True
        key_time = self._key(items[0])
        return None if key_time is None else key_time < low

    @staticmethod
    def _key(item: Any) -> float | None:
        try:
            return time_field(item, "startedAt", required=True) if isinstance(item, dict) else None
        except InvalidRecord:
            return None

    async def fetch_one(self, ref: PendingRef) -> list[Any]:
        """The session's row, by the ``sessionId`` filter; a row of another session proves it ignored."""
        body = await self.http.get_json(
            PATH, {"sessionId": ref.session_id, "page": 0, "size": 1, "workspaceId": self.source.workspace_id}
        )
        items = read_page(body)[0]
        if any(
            isinstance(item, dict)
            and isinstance(item.get("id"), (str, int))
            and not isinstance(item["id"], bool)
            and str(item["id"]) != ref.session_id
            for item in items
        ):
            raise FilterIgnored("sessionId")
        return items

    def key_of(self, item: Any) -> tuple[str, float] | None:
        if (type(item) is not dict and type(item) is not _Session) or (session_id := id_or_none(item.get("id"))) is None:
            return None
        started_at = time_or_none(item.get("startedAt"))
        return None if started_at is None else (session_id, started_at)

    def parse_item(self, item: dict[str, Any]) -> SessionRecord:
        started_at = time_field(item, "startedAt", required=True)
        finished_at = time_field(item, "finishedAt")
        status = require_str(item, "status")
        phase, outcome, known = classify(status, STATUSES, finished_at)
        assert started_at is not None
        return SessionRecord(
            session_id=require_str(item, "id", allow_int=True),
            status=status,
            phase=phase,
            outcome=outcome,
            known_status=known,
            key_time=started_at,
            started_at=started_at,
            finished_at=finished_at,
            duration_seconds=elapsed(started_at, finished_at),
            warnings=figure(item, "warnings", MAX_WARNINGS) or 0.0,
            workflow=lenient_str(item, "flowId") or "",
        )
