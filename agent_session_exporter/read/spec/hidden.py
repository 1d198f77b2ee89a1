"""What a list does not show: sessions ordered by a sequential id rather than by time, ids missing from
it (sessions the API holds in memory), and fields only a session's own page has. Each is a component
of the spec language (``incremental.order_by: id``, ``id_gaps``, ``detail_reads``)."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any, AsyncGenerator

from agent_session_exporter.model import InvalidRecord, PendingRef, Phase, PollResult, PollWindow, SessionRecord
from agent_session_exporter.read.fields import elapsed, time_field
from agent_session_exporter.read.http_client import AuthRefused, UpstreamError
from agent_session_exporter.read.providers.base import now_of
from agent_session_exporter.read.spec.extract import get_path
from agent_session_exporter.read.spec.requests import DetailReads, IdGaps

if TYPE_CHECKING:
    from agent_session_exporter.read.spec.provider import SpecProvider

#: The status of a session tracked because its id is missing from the list (its lookup tells the rest).
UNLISTED = "unlisted"


def numeric_id(session_id: str) -> int | None:
    return int(session_id) if session_id.isdigit() and len(session_id) <= 30 else None


async def read_newest_by_id(
    provider: SpecProvider, pages: AsyncGenerator[list[Any], None], window: PollWindow, result: PollResult
) -> list[SessionRecord]:
    """A list newest first by numeric id: the order verified on the ids (never trusted: a page out of
    order takes the fallback, and the list is read to its end), paging stopped as for key times (the
    first page reaching past the window, or holding a session counted before). Returns what it read."""
    now = now_of(window)
    bound: float | None = None
    seen: set[str] = set()
    read: list[SessionRecord] = []
    parameter = provider.spec.incremental.order_parameter
    async with contextlib.aclosing(pages):
        async for items in pages:
            records = provider.parse_items(items, result)
            read += records
            fresh = [n for r in records if r.session_id not in seen and (n := numeric_id(r.session_id)) is not None]
            seen.update(r.session_id for r in records)
            bound = provider.check_newest_first([float(n) for n in fresh], bound, parameter, result, now)
            if provider.order.in_use(now):
                continue
            if records and min(r.key_time for r in records) < window.since:
                break
            if window.stop_at_known and any(r.session_id in window.known_finished for r in records):
                break
    provider.order.held(now)
    return read


def gap_records(
    gaps: IdGaps, listed: list[SessionRecord], also: set[str], window: PollWindow
) -> tuple[list[SessionRecord], set[str]]:
    """The ids missing between the lowest and highest the list showed, that no other read showed: as
    placeholders where the exporter does not know them (the newest ``max_per_cycle``, each keyed at the
    time of the listed session below it, so it is looked up once the window has passed it), and, where
    it does (pending: seen running before), as the set of pending sessions now hidden (asleep)."""
    keyed = sorted((n, r.key_time) for r in listed if (n := numeric_id(r.session_id)) is not None)
    out: list[SessionRecord] = []
    hidden: set[str] = set()
    if len(keyed) < 2:
        return out, hidden
    shown = {n for n, _ in keyed} | {n for s in also if (n := numeric_id(s)) is not None}
    for (low, key_time), (high, _) in zip(reversed(keyed[:-1]), reversed(keyed[1:]), strict=True):
        for number in range(high - 1, low, -1):
            session_id = str(number)
            if number in shown or session_id in window.known_finished:
                continue
            if session_id in window.known_pending:
                hidden.add(session_id)
            elif len(out) < gaps.max_per_cycle:
                out.append(
                    SessionRecord(
                        session_id=session_id, status=UNLISTED, phase=Phase.ACTIVE, key_time=key_time, observed_at=now_of(window)
                    )
                )
            else:
                return out, hidden
    return out, hidden


class DetailReader:
    """``detail_reads``: final sessions re-read by their lookup before they count."""

    def __init__(self, provider: SpecProvider, spec: DetailReads) -> None:
        self.provider = provider
        self.spec = spec
        #: Sessions seen in one of ``spec.seen`` (in memory: after a restart, a session seen so before
        #: counts as listed).
        self.seen: set[str] = set()
        #: Sessions counted as listed because a cycle's cap was spent (said in the log).
        self.over_cap = 0

    def hidden(self, session_ids: set[str]) -> None:
        """Pending sessions the lists no longer show (asleep: waiting in the API's memory), so seen as
        ``unlisted`` sessions are."""
        if UNLISTED in self.spec.seen:
            self.seen |= session_ids

    async def read(self, result: PollResult, window: PollWindow) -> None:
        due = [
            i
            for i, r in enumerate(result.records)
            if r.phase is Phase.FINISHED
            and r.session_id not in window.known_finished
            and (window.cutoff is None or r.key_time >= window.cutoff or r.session_id in window.known_pending)
            and (
                r.status in self.spec.statuses
                or r.session_id in self.seen
                or window.known_pending.get(r.session_id) in self.spec.seen
            )
        ]
        for index in due[: self.spec.max_per_cycle]:
            record = result.records[index]
            seen = record.session_id in self.seen or window.known_pending.get(record.session_id) in self.spec.seen
            detail = await self._detail(record, result, seen)
            if detail is not None and detail.phase is Phase.FINISHED:
                result.records[index] = detail
        if len(due) > self.spec.max_per_cycle:
            self.over_cap += len(due) - self.spec.max_per_cycle
            self.provider.log.warning(
                "more sessions to re-read than detail_reads.max_per_cycle; the rest count as listed",
                max_per_cycle=self.spec.max_per_cycle,
                counted_as_listed=len(due) - self.spec.max_per_cycle,
            )
        for record in result.records:
            if record.phase is Phase.FINISHED:
                self.seen.discard(record.session_id)
            elif record.status in self.spec.seen:
                self.seen.add(record.session_id)

    async def _detail(self, record: SessionRecord, result: PollResult, seen: bool) -> SessionRecord | None:
        """The session as its own page shows it, or None (it counts as listed) when that read fails."""
        before = self.provider.http.requests_this_cycle
        try:
            items = await self.provider.fetch_one(PendingRef(record.session_id, record.key_time), self.spec.query)
        except AuthRefused:
            raise
        except UpstreamError as exc:
            self.provider.log.warning(
                "a detail read failed; the session counts as listed", session_id=record.session_id, error=exc.kind
            )
            return None
        finally:
            result.lookup_requests += self.provider.http.requests_this_cycle - before
        detail = PollResult()
        records = self.provider.parse_items(items, detail)
        found = next((r for r in records if r.session_id == record.session_id), None)
        if found is not None and self.spec.start_from and seen and items:
            self._start_from(found, items[0])
        return found

    def _start_from(self, record: SessionRecord, item: Any) -> None:
        """The start a resumed session's detail keeps (its list start is the resume)."""
        try:
            start = time_field({"start": get_path(item, self.spec.start_from or "")}, "start")
        except InvalidRecord:
            return
        if start is not None and record.started_at is not None and start < record.started_at:
            record.started_at = start
            if self.provider.spec.fields.duration is None:
                record.duration_seconds = elapsed(start, record.finished_at)
