"""Planning one cycle of a source: what a poll result changes in its state.

A pure step: a function of (state, poll result, now, settings) with no I/O, no metrics and no
logs. The poller commits the plan's delta, and only then applies it and reports its notes, so
a cycle whose commit fails changes and counts nothing.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Generator

from agent_session_exporter.count.labels import MAX_LABEL_LENGTH
from agent_session_exporter.count.state import CycleDelta, PendingSession, SourceState, followed_ahead, window_cutoff
from agent_session_exporter.count.totals import TotalsBuilder
from agent_session_exporter.model import MAX_FUTURE_SECONDS, Phase, PollResult, SessionRecord

#: The status a settling session (no upstream status) is shown with while its end time may move.
SETTLING_STATUS = "running"
#: Records planned in one step of ``plan_cycle_steps``.
RECORDS_PER_STEP = 250
_PHASE_RANK = {Phase.ACTIVE: 0, Phase.SETTLING: 1, Phase.FINISHED: 2}


@dataclass(frozen=True)
class CycleSettings:
    overlap: float
    settle_after: float
    max_pending_age: float


@dataclass
class CyclePlan:
    """The delta to commit and what to report once it is committed."""

    delta: CycleDelta
    #: Items skipped as invalid: (reason, item id or None).
    invalid: list[tuple[str, str | None]] = field(default_factory=list)
    #: Raw statuses the provider does not know, once per session that newly shows one.
    unknown_statuses: list[str] = field(default_factory=list)
    #: Pending sessions given up on: (session id, reason).
    dropped: list[tuple[str, str]] = field(default_factory=list)
    #: Newly counted sessions with optional figures left out as unusable.
    dropped_figures: int = 0
    #: (text field, session id) of each value made safe in the records taken this cycle.
    sanitized: list[tuple[str, str]] = field(default_factory=list)

    @property
    def finished(self) -> int:
        return sum(self.delta.increments.finished.values())


def plan_cycle(
    state: SourceState,
    result: PollResult | None,
    now: float,
    floor: float,
    cutoff: float,
    settings: CycleSettings,
    totals: TotalsBuilder,
    keep_from: float | None = None,
) -> CyclePlan:
    """``plan_cycle_steps`` at once."""
    steps = plan_cycle_steps(state, result, now, floor, cutoff, settings, totals, keep_from)
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]


def plan_cycle_steps(
    state: SourceState,
    result: PollResult | None,
    now: float,
    floor: float,
    cutoff: float,
    settings: CycleSettings,
    totals: TotalsBuilder,
    keep_from: float | None = None,
) -> Generator[None, None, CyclePlan]:
    """The plan of one cycle, made ``RECORDS_PER_STEP`` records at a time: the generator yields between
    them (so that the caller may let its event loop run) and returns the plan. ``result`` None: the
    poll failed, and only expiry runs (a session that cannot be read is still given up on after
    ``max_pending_age``).

    ``cutoff``: the oldest key time this cycle counts (older items are not ours, unless pending).
    ``keep_from``: counted ids this recent are kept even behind the new window, because the next
    sweep reaches back to them (None: the window alone decides)."""
    if result is None:
        plan = CyclePlan(CycleDelta(floor=state.floor, watermark=state.watermark, increments=totals.totals))
        unread = PollResult(unreadable={sid: "poll_failed" for sid in state.pending})
        _expire_pending(state, plan, unread, now, settings)
        return plan
    plan = CyclePlan(CycleDelta(floor=floor, watermark=state.watermark, increments=totals.totals), invalid=list(result.invalid))
    delta = plan.delta
    newest = state.watermark if state.watermark is not None else float("-inf")
    latest_future = now + MAX_FUTURE_SECONDS
    ahead: list[float] = []  # key times past our clock, to tell an upstream clock ahead from an outlier
    counted, pending_sessions, add_finished = state.counted, state.pending, totals.add
    if result.newest_known is not None and newest < result.newest_known <= now:
        newest = result.newest_known  # counted ahead of the watermark by a push's lookup, now read in order
    for position, record in enumerate(_latest_by_id(result.records), 1):
        if not position % RECORDS_PER_STEP:
            yield
        sid = record.session_id
        if sid in counted:
            if newest < record.key_time <= now:
                newest = record.key_time  # counted ahead of the watermark by a push's lookup, now read in order
            continue
        pending = pending_sessions.get(sid)
        key_time = record.key_time
        if key_time < cutoff and pending is None:
            continue  # outside the window and not ours to track
        if key_time > latest_future:
            plan.invalid.append(("future_timestamp", sid[:128]))
            continue
        if record.sanitized:
            plan.sanitized.extend((name, sid) for name in record.sanitized)
        if key_time > newest:
            newest = key_time
        if key_time > now:
            ahead.append(key_time)
        if not record.known_status and (
            pending is None or pending.status != record.status[:MAX_LABEL_LENGTH] or record.phase is Phase.FINISHED
        ):
            plan.unknown_statuses.append(record.status)
        observed = record.observed_at if record.observed_at is not None else now
        if record.phase is Phase.SETTLING:
            # The settle clock is the exporter's own: from the first response that showed this end time
            # to one that shows it still, ``settle_after`` later; never the upstream's end_time, nor
            # the cycle's start (a poll slowed by retries would lend it its delay).
            seen_since = (
                pending.end_seen_at
                if pending and pending.end_time == record.finished_at and pending.end_seen_at is not None
                else observed
            )
            if observed - seen_since < settings.settle_after:
                still = PendingSession(
                    key_time,
                    SETTLING_STATUS,
                    pending.first_seen if pending else observed,
                    record.finished_at,
                    seen_since,
                    record.workflow,
                )
                if still != pending:  # a session seen as it was changes nothing
                    delta.pending_upsert[sid] = still
                continue
        elif record.phase is Phase.ACTIVE:
            still = PendingSession(
                key_time, record.status[:MAX_LABEL_LENGTH], pending.first_seen if pending else observed, workflow=record.workflow
            )
            if still != pending:
                delta.pending_upsert[sid] = still
            continue
        add_finished(record)
        plan.dropped_figures += bool(record.dropped_figures)
        delta.counted_add[sid] = key_time
        if pending is not None:
            delta.pending_remove.append(sid)
    if newest > now:
        newest = followed_ahead(newest, ahead, now, state.watermark, settings.overlap)
    delta.watermark = None if newest == float("-inf") else newest
    _expire_pending(state, plan, result, now, settings)
    new_cutoff = window_cutoff(floor, delta.watermark, settings.overlap)
    if keep_from is not None:
        new_cutoff = min(new_cutoff, keep_from)
    delta.counted_remove = [sid for sid, key_time in state.counted.items() if key_time < new_cutoff]
    for sid in [sid for sid, key_time in delta.counted_add.items() if key_time < new_cutoff]:
        del delta.counted_add[sid]
    return plan


def _expire_pending(state: SourceState, plan: CyclePlan, result: PollResult, now: float, settings: CycleSettings) -> None:
    delta = plan.delta
    for sid in result.gone:
        if sid in state.pending and sid not in delta.pending_upsert and sid not in delta.counted_add:
            delta.pending_remove.append(sid)
            plan.dropped.append((sid, "gone"))
    if result.removed_workflows:
        for sid, pending in state.pending.items():
            if pending.workflow in result.removed_workflows and sid not in delta.pending_remove and sid not in delta.counted_add:
                delta.pending_remove.append(sid)
                delta.pending_upsert.pop(sid, None)
                plan.dropped.append((sid, "workflow_removed"))
    # The latest moment the cycle knows by the exporter's clock: its start, or the last response read.
    present = max(
        [
            now,
            *(r.observed_at for r in result.records if r.observed_at is not None),
            *((result.observed,) if result.observed is not None else ()),
        ]
    )
    oldest_allowed = present - settings.max_pending_age
    for sid, pending in itertools.chain(state.pending.items(), list(delta.pending_upsert.items())):
        too_old = pending.key_time < oldest_allowed or pending.first_seen < oldest_allowed
        if too_old and sid not in delta.pending_remove:
            delta.pending_remove.append(sid)
            delta.pending_upsert.pop(sid, None)
            plan.dropped.append((sid, "unreadable" if sid in result.unreadable else "max_pending_age"))


def _latest_by_id(records: list[SessionRecord]) -> list[SessionRecord]:
    """One record per session id (a page, or a lookup, may repeat a session): the most advanced phase
    wins, and of one phase the latest observed (it may show an end time that moved since)."""
    by_id: dict[str, SessionRecord] = {}
    for record in records:
        current = by_id.setdefault(record.session_id, record)
        if current is record:
            continue
        rank, current_rank = _PHASE_RANK[record.phase], _PHASE_RANK[current.phase]
        if rank > current_rank or (rank == current_rank and (record.observed_at or 0.0) > (current.observed_at or 0.0)):
            by_id[record.session_id] = record
    return list(by_id.values())
