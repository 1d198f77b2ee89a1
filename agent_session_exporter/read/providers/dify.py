"""Dify workflow logs: ``GET {base_url}/workflows/logs`` (seeds/001).

``Authorization: Bearer``; one-based ``page``, ``limit`` 1..100, ``has_more`` marks the end.
Ordered by the log's ``created_at`` descending; ``created_at__after`` (inclusive) bounds the
window. The run is in ``workflow_run``; ``elapsed_time`` and the timestamps are in seconds.
A row's ``workflow_run`` may be null (Dify allows it): there is no run to count, and it is skipped
quietly. A stopped run is ``cancelled``; Dify writes its stop reason ("Stopped by user.") into
``error``, which therefore never makes it an error. ``exceptions_count`` (node errors handled by an
error strategy) is the run's warnings, except on a ``failed`` run, where Dify counts the failing
node too (1 on a real 1.13.2): that failure is already the error, and is no warning.
A real Dify 1.13.2 writes the log row as the run starts (older 1.x code wrote it as the run ended),
and a run may be paused for hours waiting for a human; one stopped through
``POST /workflows/tasks/{task_id}/stop`` stays ``running`` in the logs for good, pending until
``max_pending_age``. A pending run is re-read from the rows of its own second
(``created_at__after``/``__before`` one second apart: its row keeps its ``created_at``), which
has every figure the list has; the run detail endpoint lacks ``exceptions_count``.

Every answer carries ``total``, the count of rows matching the filter, so instead of a due sweep
the exporter asks for the count of rows in the band the sweep would re-read (one request of one
row): when it matches the rows the exporter knows there, nothing was written late.
"""

from __future__ import annotations

import math
from typing import Any, Literal

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
    MAX_ERROR_TEXT,
    MAX_SECONDS,
    MAX_TOKENS,
    MAX_WARNINGS,
    elapsed,
    figure,
    id_or_none,
    lenient_str,
    object_field,
    optional_str,
    require_str,
    time_field,
    time_or_none,
)
from agent_session_exporter.read.pagers import numbered_pages
from agent_session_exporter.read.providers.base import Provider
from agent_session_exporter.read.providers.dify_pages import (
    PAGE,
    PATH,
    Row,
    read_page,
    row_created_at,
    run_id,
    seconds_as_is,
)
from agent_session_exporter.read.providers.lookups import FilterIgnored
from agent_session_exporter.read.source import SourceBase
from agent_session_exporter.read.typed import Untyped, as_plain
from agent_session_exporter.timeparse import bounds_at_resolution, to_iso

STATUSES: dict[str, Outcome | None] = {
    "running": None,
    "scheduled": None,
    "paused": None,
    "suspended": None,
    "succeeded": Outcome.SUCCESS,
    "partial-succeeded": Outcome.SUCCESS,
    "failed": Outcome.ERROR,
    "stopped": Outcome.CANCELLED,
}


def _seconds(low: float, high: float) -> dict[str, str]:
    """The filter of the rows whose ``created_at``, as the list shows it (whole seconds), is in [``low``, ``high``]."""
    after, before = bounds_at_resolution(low, high, 1)
    return {"created_at__after": after, "created_at__before": before}


def _second_of(key_time: float) -> dict[str, str]:
    return _seconds(math.floor(key_time), key_time)


def _warnings(outcome: Outcome | None, exceptions_count: float | None) -> float:
    """A run's warnings: its ``exceptions_count``, but none on a failed run (Dify counts the failing node
    there too; the failure is the run's error). Exported so since 2026-11-30."""
    return 0.0 if outcome is Outcome.ERROR else exceptions_count or 0.0


class DifySource(SourceBase):
    provider: Literal["dify"]
    page_size: int = Field(100, ge=1, le=100)


class DifyProvider(Provider[DifySource]):
    Config = DifySource
    STATUSES = STATUSES
    FIGURES = frozenset({"warnings", "tokens"})
    PROBES = True
    PENDING_RECHECK = "lookup"

    async def poll(self, window: PollWindow) -> PollResult:
        result = PollResult()
        params = {"limit": self.source.page_size, "created_at__after": to_iso(window.since)}
        pages = numbered_pages(
            lambda page: self.http.get_json(PATH, {**params, "page": page}, PAGE),
            read_page,
            first=1,
            max_pages=self.source.max_pages,
            on_limit=self.max_pages_reached,
            prefetch=not window.stop_at_known,  # a steady read mostly ends on page one
            page_size=self.source.page_size,
        )
        await self.read_newest_first(pages, window, window.since, result, "created_at")
        await self.recheck_pending(window.stale_pending, result, self.fetch_one)
        return result

    async def fetch_one(self, ref: PendingRef) -> list[Any]:
        """The page of the pending run's own second that holds its row (the last one read if none does).
        A row of another second proves ``created_at__after``/``__before`` ignored: FilterIgnored, unless
        the run's row is on that page too (then the rows of its second are kept)."""
        params = {"limit": self.source.page_size, **_second_of(ref.key_time)}
        second = math.floor(ref.key_time)
        rows: list[Any] = []
        async for rows in numbered_pages(
            lambda page: self.http.get_json(PATH, {**params, "page": page}, PAGE),
            read_page,
            first=1,
            max_pages=self.source.max_pages,
            on_limit=self.max_pages_reached,
            page_size=self.source.page_size,
        ):
            found = any(run_id(item) == ref.session_id for item in rows)
            ours = [
                item
                for item in rows
                if run_id(item) == ref.session_id or (created := row_created_at(item)) is None or math.floor(created) == second
            ]
            if len(ours) < len(rows):
                if not found:
                    raise FilterIgnored("created_at__after/__before")
                return ours
            if found:
                break
        return rows

    async def band_holds(self, low: float, high: float, known: KnownRows) -> bool | None:
        """The answer's ``total`` counts the rows of the filter: one row asked for, the count compared."""
        body = await self.http.get_json(PATH, {"limit": 1, "page": 1, **_seconds(low, high)})
        total = body.get("total") if isinstance(body, dict) else None
        return total == known.count(low, high) if type(total) is int and total >= 0 else None

    def skipped_row(self, item: Any) -> tuple[str, float] | None:
        plain = as_plain(item) if isinstance(item, Row) else item
        if not isinstance(plain, dict):
            return None
        row_id = lenient_str(plain, "id")
        try:
            key_time = time_field(plain, "created_at")
        except InvalidRecord:
            return None
        return (row_id, key_time) if row_id and key_time is not None else None

    def key_of(self, item: Any) -> tuple[str, float] | None:
        if type(item) is Row:
            run: Any = item.workflow_run
            if run is None:
                return None
            run_id, row_id, row_created, run_created = run.id, item.id, item.created_at, run.created_at
        elif type(item) is dict and type(run := item.get("workflow_run")) is dict:
            run_id, row_id, row_created, run_created = (
                run.get("id"),
                item.get("id"),
                item.get("created_at"),
                run.get("created_at"),
            )
        else:
            return None
        session_id = id_or_none(run_id) if run_id else id_or_none(row_id)
        key_time = time_or_none(row_created) if row_created is not None and row_created != "" else None
        if key_time is None:
            if row_created is not None and row_created != "":
                return None  # a created_at that does not read: the item is read whole (and refused)
            key_time = time_or_none(run_created)
        return None if session_id is None or key_time is None else (session_id, key_time)

    def from_typed(self, row: Row) -> SessionRecord | None:
        run = row.workflow_run
        if run is None:
            return None
        status, run_id, error = run.status, run.id, run.error
        # What time_field and figure take as they are, checked inline: this runs once per session.
        started_at, finished_at = seconds_as_is(run.created_at), seconds_as_is(run.finished_at)
        key_time = seconds_as_is(row.created_at)
        key_time = started_at if key_time is None else key_time
        duration, total_tokens, warnings = run.elapsed_time, run.total_tokens, run.exceptions_count
        if (
            key_time is None
            or not status
            or (not run_id and not row.id)
            or (duration is not None and not 0 <= duration <= MAX_SECONDS)
            or (total_tokens is not None and not 0 <= total_tokens <= MAX_TOKENS)
            or (warnings is not None and not 0 <= warnings <= MAX_WARNINGS)
        ):
            raise Untyped
        phase, outcome, known = classify(status, STATUSES, finished_at)
        return SessionRecord(
            session_id=str(run_id if run_id else row.id),
            status=status,
            phase=phase,
            outcome=outcome,
            known_status=known,
            key_time=key_time,
            started_at=started_at,
            finished_at=finished_at,
            duration_seconds=duration if duration is not None else elapsed(started_at, finished_at),
            warnings=_warnings(outcome, warnings),
            error_text=bool(error),
            error_message=error[:MAX_ERROR_TEXT] if error else None,
            tokens={"total": total_tokens} if total_tokens else {},
        )

    def parse_item(self, item: dict[str, Any]) -> SessionRecord | None:
        run = item.get("workflow_run")
        if type(run) is not dict:
            if run is None:
                return None  # a log row without a run: nothing to count
            run = object_field(item, "workflow_run", required=True)  # raises the right InvalidRecord
        status = require_str(run, "status")
        started_at = time_field(run, "created_at")
        finished_at = time_field(run, "finished_at")
        key_time = time_field(item, "created_at")
        key_time = started_at if key_time is None else key_time
        if key_time is None:
            raise InvalidRecord("missing_field", "created_at")
        phase, outcome, known = classify(status, STATUSES, finished_at)
        duration = figure(run, "elapsed_time", MAX_SECONDS)
        total_tokens = figure(run, "total_tokens", MAX_TOKENS)
        return SessionRecord(
            session_id=require_str(run, "id", allow_int=True) if run.get("id") else require_str(item, "id", allow_int=True),
            status=status,
            phase=phase,
            outcome=outcome,
            known_status=known,
            key_time=key_time,
            started_at=started_at,
            finished_at=finished_at,
            duration_seconds=duration if duration is not None else elapsed(started_at, finished_at),
            warnings=_warnings(outcome, figure(run, "exceptions_count", MAX_WARNINGS)),
            error_text=bool(optional_str(run, "error")),
            error_message=lenient_str(run, "error", MAX_ERROR_TEXT),
            tokens={"total": total_tokens} if total_tokens else {},
        )
