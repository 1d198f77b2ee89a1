"""A lookup-only cycle: the sessions pushes named, read one by one through the provider
(``Provider.look_up``) and planned, committed and reported as any cycle's read is, through the same
dedup and state, and one CycleReport of its own (``lookup_only``: it says nothing of the source's
health). What counts is what the lookup reads, never what a push said; and only a session of a
workflow the source polls (``Provider.polls_workflow``: an event stream names every workflow's).

It moves no window: the watermark stays where the last poll left it (a session looked up may be
newer than everything read so far; the sessions between were not read yet), no counted id leaves
the window, and a session counted ahead of the watermark makes the next poll read its whole
window (a sweep), so a reader that stops at the first counted session cannot stop at it early.
"""

from __future__ import annotations

import asyncio

from agent_session_exporter.count.cycle import plan_cycle
from agent_session_exporter.count.hints import Hint
from agent_session_exporter.count.state import window_cutoff
from agent_session_exporter.model import PendingRef, PollResult
from agent_session_exporter.poller import SourcePoller
from agent_session_exporter.read.fields import InvalidPage
from agent_session_exporter.read.http_client import UpstreamError
from agent_session_exporter.serve.cycle_report import CycleReport, Failure


async def run_lookup_cycle(poller: SourcePoller, hints: list[Hint]) -> set[str]:
    """Look up the sessions ``hints`` name and commit what the answers show; return the ids it counted.
    Before the source's first successful poll nothing is looked up (that poll reads them). A failed
    lookup commits nothing (the next poll counts what it would have)."""
    if poller.state.floor is None or not hints:
        return set()
    report = CycleReport(lookup_only=True)
    before = poller._session_fingerprint()
    try:
        return await _look_up(poller, hints, report)
    finally:
        poller.reporter.publish(report)
        poller.on_change(poller._session_fingerprint() != before)  # its self-metrics rendered again, at least


async def _look_up(poller: SourcePoller, hints: list[Hint], report: CycleReport) -> set[str]:
    state, source, provider = poller.state, poller.source, poller.provider
    assert state.floor is not None
    now = poller.clock()
    floor, watermark = state.floor, state.watermark
    sweeps = poller.reads.sweeps
    reach = sweeps.reach(floor, watermark)
    cutoff = min(reach, window_cutoff(floor, watermark, source.overlap))
    refs = [
        PendingRef(h.session_id, pending.key_time if (pending := state.pending.get(h.session_id)) else h.received_at)
        for h in hints
    ]
    http = provider.http
    http.start_cycle(source.max_requests_per_cycle)
    result = PollResult()
    try:
        async with asyncio.timeout(source.cycle_timeout):
            await provider.look_up(refs, result)
    except (UpstreamError, InvalidPage, TimeoutError) as exc:
        report.failures.append(Failure("looking up sessions named by pushes failed; the next poll counts them", exc))
        return set()
    finally:
        report.requests["push"] += http.requests_this_cycle
    # A stream names every workflow's sessions: one the source does not poll is not its to count.
    result.records = [r for r in result.records if not r.workflow or provider.polls_workflow(r.workflow)]
    builder = poller.counter.builder(now)
    plan = plan_cycle(state, result, now, floor, cutoff, poller.settings, builder, keep_from=reach)
    delta = plan.delta
    delta.watermark, delta.counted_remove = watermark, []
    builder.name_workflows(result.records, state.totals.names)
    if delta.changes(state):
        poller.store.commit(source.name, delta, state.totals.plus(delta.increments))
        delta.apply_to(state)
    report.committed_at = poller.clock()
    if watermark is not None and any(key_time > watermark for key_time in delta.counted_add.values()):
        sweeps.needed = True
    poller._note_sessions(report, builder, result, plan)
    report.fold(delta.increments.folded, state.totals.folded)
    poller._fold_active(report)
    dropped = {sid for sid, _ in plan.dropped}
    return set(delta.counted_add) | {sid for sid in delta.pending_remove if sid not in dropped}
