"""Whatabot: ``GET {base_url}/sessions/logs`` (seeds/000).

Header ``X-Api-Key``; zero-based ``page``, ``size`` 1..100; a Spring page object whose ``last``
marks the end. There is no "since" filter, so the list is read newest first
(``orderBy=startedAt&direction=DESC``; the default direction is ASC) and paging stops once a page
reaches back past the window. The sort column ``startedAt`` is not documented, so the order is
verified on every page: an API that ignores it is read to its last page instead. ``dateRange``
narrows the server's work to a preset that surely covers the window. Pending sessions older than
the window are re-read with the ``sessionId`` filter.
"""

from __future__ import annotations

import time
from typing import Any, Literal

from pydantic import Field

from ..http_client import HeaderAuth
from ..model import Outcome, SessionRecord, classify
from ..sourceconfig import SourceBase
from .base import PollResult, PollWindow, Provider
from .fields import MAX_WARNINGS, elapsed, figure, lenient_str, list_field, require_str, time_field
from .pagers import numbered_pages

PATH = "/sessions/logs"
STATUSES: dict[str, Outcome | None] = {
    "running": None, "active": None,
    "completed": Outcome.SUCCESS, "error": Outcome.ERROR, "timeout": Outcome.TIMEOUT,
}
_DATE_RANGES = ((7, "last7days"), (15, "last15days"), (30, "last30days"))


def date_range_for(since: float, now: float) -> str | None:
    """The smallest preset that covers ``since`` with a day to spare (presets may be calendar days)."""
    age_days = (now - since) / 86400.0
    for days, preset in _DATE_RANGES:
        if age_days + 1 < days:
            return preset
    return None


def read_page(body: Any) -> tuple[list[Any], bool]:
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


class WhatabotProvider(Provider):
    AUTH = HeaderAuth("X-Api-Key", "")
    Config = WhatabotSource
    STATUSES = STATUSES
    FIGURES = frozenset({"warnings"})
    PENDING_RECHECK = "lookup"

    async def poll(self, window: PollWindow) -> PollResult:
        result = PollResult()
        params = {
            "size": self.source.page_size, "orderBy": "startedAt", "direction": "DESC",
            "workspaceId": self.source.workspace_id, "dateRange": date_range_for(window.since, window.now or time.time()),
        }
        pages = numbered_pages(lambda page: self.http.get_json(PATH, {**params, "page": page}), read_page, first=0,
                               max_pages=self.source.max_pages, on_limit=self.max_pages_reached)
        await self.read_newest_first(pages, window, window.since, result, "orderBy")
        await self.recheck_pending(window.stale_pending, result, self._fetch_one)
        return result

    async def _fetch_one(self, session_id: str) -> list[Any]:
        body = await self.http.get_json(PATH, {"sessionId": session_id, "page": 0, "size": 1,
                                               "workspaceId": self.source.workspace_id})
        return read_page(body)[0]

    def parse_item(self, item: dict[str, Any]) -> SessionRecord:
        started_at = time_field(item, "startedAt", required=True)
        finished_at = time_field(item, "finishedAt")
        status = require_str(item, "status")
        phase, outcome, known = classify(status, STATUSES, finished_at)
        assert started_at is not None
        return SessionRecord(
            session_id=require_str(item, "id", allow_int=True), status=status, phase=phase, outcome=outcome, known_status=known,
            key_time=started_at, started_at=started_at, finished_at=finished_at,
            duration_seconds=elapsed(started_at, finished_at),
            warnings=figure(item, "warnings", MAX_WARNINGS) or 0.0,
            workflow=lenient_str(item, "flowId") or "",
        )
