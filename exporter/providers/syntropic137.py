"""Syntropic137: ``GET {base_url}/sessions`` and ``GET {base_url}/sessions/{id}`` (seeds/002).

No documented auth (a gateway may ask for Basic auth; Bearer is sent when a key is set).
``limit`` 1..200 and no page number: the list is newest first, so older pages are reached by
moving the inclusive ``started_before`` bound to the oldest ``started_at`` seen, which brings the
boundary item back once more (deduplicated by the collector). ``total`` is the page length, not a
count, so a short page is the end. ``total_cost_usd`` is a decimal string; ``duration_seconds``
is float seconds or null. Pending sessions older than the window are re-read one by one.
"""

from __future__ import annotations

from typing import Any

from ..http_client import NotFound
from ..model import Outcome, SessionRecord, classify
from ..timeparse import to_iso
from .base import (PollResult, PollWindow, Provider, elapsed, list_field, optional_number, optional_str,
                   require_str, time_field)

PATH = "/sessions"
STATUSES: dict[str, Outcome | None] = {
    "running": None,
    "completed": Outcome.SUCCESS, "failed": Outcome.ERROR, "cancelled": Outcome.CANCELLED,
}
TOKEN_FIELDS = {"input": "input_tokens", "output": "output_tokens",
                "cache_read": "cache_read_tokens", "cache_creation": "cache_creation_tokens"}


class Syntropic137Provider(Provider):
    async def poll(self, window: PollWindow) -> PollResult:
        result = PollResult()
        params: dict[str, Any] = {"limit": self.source.page_size, "started_after": to_iso(window.since),
                                  "workflow_id": self.source.workflow_id}
        seen: set[str] = set()
        for _ in range(self.source.max_pages):
            body = await self.http.get_json(PATH, params)
            items = list_field(body, "sessions", PATH)
            records = self.parse_items(items, result)
            fresh = [r for r in records if r.session_id not in seen]
            seen.update(r.session_id for r in records)
            if len(items) < self.source.page_size or not fresh:
                break
            # Inclusive bound, rounded up: the boundary item comes back once more, nothing is skipped.
            before = to_iso(min(r.key_time for r in records) + 1e-6)
            if params.get("started_before") == before:
                self.log.warning("a full page shares one started_at; cannot page further", started_at=before)
                break
            params = {**params, "started_before": before}
        else:
            self.log.warning("max_pages reached, the rest of the window is read next cycle")
        for pending in window.stale_pending:
            try:
                body = await self.http.get_json(f"{PATH}/{pending.session_id}")
            except NotFound:
                result.gone.append(pending.session_id)
                continue
            self.parse_items([body], result)
        return result

    def parse_item(self, item: dict[str, Any]) -> SessionRecord:
        status = require_str(item, "status")
        started_at = time_field(item, "started_at", required=True)
        finished_at = time_field(item, "completed_at")
        assert started_at is not None
        phase, outcome, known = classify(status, STATUSES, finished_at)
        duration = optional_number(item, "duration_seconds")
        tokens = {kind: value for kind, key in TOKEN_FIELDS.items() if (value := optional_number(item, key))}
        return SessionRecord(
            session_id=require_str(item, "id", allow_int=True), status=status, phase=phase, outcome=outcome, known_status=known,
            key_time=started_at, started_at=started_at, finished_at=finished_at,
            duration_seconds=duration if duration else elapsed(started_at, finished_at),
            error_text=bool(optional_str(item, "error_message")),
            tokens=tokens, cost_usd=optional_number(item, "total_cost_usd"),
            model=optional_str(item, "agent_model"),
        )
