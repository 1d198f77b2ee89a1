"""A lookup-only cycle: the sessions pushes named, read one by one through the provider
(``Provider.look_up``) and planned, committed and reported as any cycle's read is, through the same
dedup and state. What counts is what the lookup reads, never what a push said.

It moves no window: the watermark stays where the last poll left it (a session looked up may be
newer than everything read so far; the sessions between were not read yet), no counted id leaves
the window, and a session counted ahead of the watermark makes the next poll read its whole
window (a sweep), so a reader that stops at the first counted session cannot stop at it early.
"""

from __future__ import annotations

import asyncio

from agent_session_exporter.count.cycle import CyclePlan, plan_cycle
from agent_session_exporter.count.hints import Hint
from agent_session_exporter.count.state import window_cutoff
from agent_session_exporter.model import PendingRef, PollResult
from agent_session_exporter.poller import SourcePoller
from agent_session_exporter.read.fields import InvalidPage
from agent_session_exporter.read.http_client import UpstreamError


async def run_lookup_cycle(poller: SourcePoller, hints: list[Hint]) -> set[str]:
    """Look up the sessions ``hints`` name and commit what the answers show; return the ids it counted.
    Before the source's first successful poll nothing is looked up (that poll reads them). A failed
    lookup commits nothing (the next poll counts what it would have)."""
    state, source, provider = poller.state, poller.source, poller.provider
    if state.floor is None or not hints:
        return set()
    now = poller.clock()
    floor, watermark = state.floor, state.watermark
    reach = poller.sweeps.reach(floor, watermark)
    cutoff = min(reach, window_cutoff(floor, watermark, source.overlap))
    refs = [PendingRef(h.session_id, pending.key_time if (pending := state.pending.get(h.session_id)) else h.received_at)
            for h in hints]
    http = provider.http
    http.start_cycle(source.max_requests_per_cycle)
    result = PollResult()
    try:
        async with asyncio.timeout(source.cycle_timeout):
            await provider.look_up(refs, result)
    except (UpstreamError, InvalidPage, TimeoutError) as exc:
        poller.log.warning("looking up sessions named by pushes failed; the next poll counts them", sessions=len(refs),
                           error=str(exc) or type(exc).__name__)
        return set()
    finally:
        poller.metrics.cycle_requests("push", http.requests_this_cycle)
    before = poller._session_fingerprint()
    builder = poller._builder(now)
    plan = plan_cycle(state, result, now, floor, cutoff, poller.settings, builder, keep_from=reach)
    delta = plan.delta
    delta.watermark, delta.counted_remove = watermark, []
    builder.name_workflows(result.records, state.totals.names)
    poller.store.commit(source.name, delta, state.totals.plus(delta.increments))
    delta.apply_to(state)
    if watermark is not None and any(key_time > watermark for key_time in delta.counted_add.values()):
        poller.sweeps.needed = True
    poller._note_sessions(builder, result.records, delta.counted_add)
    _report(poller, result, plan)
    poller.on_change(poller._session_fingerprint() != before)
    dropped = {sid for sid, _ in plan.dropped}
    return set(delta.counted_add) | {sid for sid in delta.pending_remove if sid not in dropped}


def _report(poller: SourcePoller, result: PollResult, plan: CyclePlan) -> None:
    """What a committed poll reports of its records, but not the source's health: a lookup says
    nothing of whether its list can be read (``source_up`` and the last success are the polls')."""
    poller._report_invalid(plan.invalid)
    poller._report_sanitized(plan.sanitized)
    for status in plan.unknown_statuses:
        poller.metrics.unknown_status(poller.status_label(status))
    poller._report_dropped(plan)
    poller._report_folded(plan.delta.increments.folded)
    if result.unreadable:
        poller.log.info("sessions named by pushes could not be looked up; the next poll counts them",
                        sessions=len(result.unreadable), errors=sorted(set(result.unreadable.values())))
    poller._active = poller._active_view()
    poller._update_gauges()
