"""HoneyHive: ``GET {base_url}/session`` (seeds/003).

``Authorization: Bearer``; ``project`` and ``limit``; the answer is a bare list. Sessions have
no status: a session with an ``end_time`` is *settling* and the collector counts it once the
``end_time`` has stopped moving for ``settle_after``; ``error`` set means an error outcome.
``start_time``/``end_time`` are Unix milliseconds and ``duration`` is milliseconds.
Token and cost rollups are in ``metadata``.
"""

from __future__ import annotations

from typing import Any

from ..model import InvalidRecord, Outcome, Phase, SessionRecord
from .base import (InvalidPage, PollResult, PollWindow, Provider, elapsed, object_field, optional_number,
                   optional_str, require_str, time_field)

PATH = "/session"


class HoneyhiveProvider(Provider):
    async def poll(self, window: PollWindow) -> PollResult:
        result = PollResult()
        body = await self.http.get_json(PATH, {"project": self.source.project, "limit": self.source.page_size})
        if not isinstance(body, list):
            raise InvalidPage(PATH, "a list of sessions")
        records = self.parse_items(body, result)
        if len(body) >= self.source.page_size and all(r.key_time >= window.since for r in records):
            self.log.warning("the answer is full and holds nothing older than the window: sessions may be missed;"
                             " raise page_size or poll more often", page_size=self.source.page_size)
        return result

    def parse_item(self, item: dict[str, Any]) -> SessionRecord:
        session_id = item.get("session_id") or item.get("event_id")
        if not session_id:
            raise InvalidRecord("missing_field", "session_id")
        started_at = time_field(item, "start_time", required=True)
        finished_at = time_field(item, "end_time")
        assert started_at is not None
        error = bool(optional_str(item, "error"))
        metadata = object_field(item, "metadata")
        duration_ms = optional_number(item, "duration")
        prompt, completion = optional_number(metadata, "prompt_tokens"), optional_number(metadata, "completion_tokens")
        if prompt is None and completion is None:
            total = optional_number(metadata, "total_tokens")
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
            error_text=error, tokens=tokens, cost_usd=optional_number(metadata, "cost"),
            model=metadata.get("model") if isinstance(metadata.get("model"), str) else None,
        )
