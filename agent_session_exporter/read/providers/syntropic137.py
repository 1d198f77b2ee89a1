"""Syntropic137: ``GET {base_url}/sessions`` and ``GET {base_url}/sessions/{id}`` (seeds/002).

No documented auth (a gateway may ask for Basic auth; Bearer is sent when a key is set).
``limit`` 1..200 and no page number: the list is newest first, so older pages are reached by
moving the inclusive ``started_before`` bound to the oldest ``started_at`` seen, which brings the
boundary item back once more (deduplicated by the poller). ``total`` is the page length, not a
count, so a short page is the end. The newest-first order is verified on every page: should a full
page break it, the time range is split in halves until each half fits in a page (slower, never
wrong). ``total_cost_usd`` is a decimal string; ``duration_seconds`` is float seconds or null, and
null on a finished session (one orphaned by a framework restart, ``completed_at`` = now) means no
duration is known: none is invented. Pending sessions older than the window are re-read one by one.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal, Sequence
from urllib.parse import quote

from pydantic import Field

from agent_session_exporter.model import Outcome, PendingRef, PollResult, PollWindow, SessionRecord, classify
from agent_session_exporter.read.fields import (
    MAX_COST_USD,
    MAX_SECONDS,
    MAX_TOKENS,
    figure,
    MAX_ERROR_TEXT,
    lenient_str,
    list_field,
    optional_str,
    require_str,
    time_field,
)
from agent_session_exporter.read.pagers import time_ranges
from agent_session_exporter.read.providers.base import Provider, now_of
from agent_session_exporter.read.source import SourceBase
from agent_session_exporter.timeparse import to_iso

PATH = "/sessions"
STATUSES: dict[str, Outcome | None] = {
    "running": None,
    "completed": Outcome.SUCCESS, "failed": Outcome.ERROR, "cancelled": Outcome.CANCELLED,
}
TOKEN_FIELDS = {"input": "input_tokens", "output": "output_tokens",
                "cache_read": "cache_read_tokens", "cache_creation": "cache_creation_tokens"}


class Syntropic137Source(SourceBase):
    CREDENTIAL_REQUIRED: ClassVar[bool] = False  # no auth of its own; a gateway may want Basic auth
    provider: Literal["syntropic137"]
    page_size: int = Field(200, ge=1, le=200)
    workflow_id: str | None = Field(None, description="only this workflow's sessions")


class Syntropic137Provider(Provider):
    Config = Syntropic137Source
    STATUSES = STATUSES
    FIGURES = frozenset({"tokens", "cost"})
    PENDING_RECHECK = "lookup"

    async def poll(self, window: PollWindow) -> PollResult:
        result = PollResult()

        async def read(low: float, high: float | None) -> tuple[int, list[float]]:
            params = {"limit": self.source.page_size, "started_after": to_iso(low),
                      "started_before": None if high is None else to_iso(high), "workflow_id": self.source.workflow_id}
            items = list_field(await self.http.get_json(PATH, params), "sessions", PATH)
            return len(items), [r.key_time for r in self.parse_items(items, result)]

        now = now_of(window)
        await time_ranges(read, since=window.since, now=window.now if window.now is not None else window.since,
                          page_size=self.source.page_size, max_pages=self.source.max_pages,
                          newest_first=lambda keys: self._in_order(keys, result, now), on_limit=self.max_pages_reached,
                          on_stuck=lambda at: self.page_stuck(result, at, "started_at"))
        self.order.held(now)
        await self.recheck_pending(window.stale_pending, result, self.fetch_one)
        return result

    def _in_order(self, keys: Sequence[float], result: PollResult, now: float) -> bool:
        """Whether a full page keeps the promised newest-first order (once broken, not trusted until the
        order is tried again)."""
        self.check_newest_first(keys, None, "started_at order", result, now)
        return not self.order.in_use(now)

    async def fetch_one(self, ref: PendingRef) -> list[Any]:
        return [await self.http.get_json(f"{PATH}/{quote(ref.session_id, safe='')}")]

    def parse_item(self, item: dict[str, Any]) -> SessionRecord:
        status = require_str(item, "status")
        started_at = time_field(item, "started_at", required=True)
        finished_at = time_field(item, "completed_at")
        assert started_at is not None
        phase, outcome, known = classify(status, STATUSES, finished_at)
        duration = figure(item, "duration_seconds", MAX_SECONDS)
        tokens = {kind: value for kind, key in TOKEN_FIELDS.items() if (value := figure(item, key, MAX_TOKENS))}
        return SessionRecord(
            session_id=require_str(item, "id", allow_int=True), status=status, phase=phase, outcome=outcome, known_status=known,
            key_time=started_at, started_at=started_at, finished_at=finished_at,
            duration_seconds=duration,
            error_text=bool(optional_str(item, "error_message")),
            tokens=tokens, cost_usd=figure(item, "total_cost_usd", MAX_COST_USD),
            model=optional_str(item, "agent_model"),
            workflow=lenient_str(item, "workflow_id") or "", workflow_name=lenient_str(item, "workflow_name"),
            error_message=lenient_str(item, "error_message", MAX_ERROR_TEXT),
        )
