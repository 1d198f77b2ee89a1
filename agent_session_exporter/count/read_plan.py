"""The cheapest list read that still sees everything (``plan_read``): where a cycle's read starts, whether
it sweeps the late-write band, and which pending sessions it leaves to one-by-one lookups. Pure."""

from __future__ import annotations

import bisect
from dataclasses import dataclass

from agent_session_exporter.count.state import SourceState, window_cutoff

#: A read reaching back to a pending session starts this much before its key time: key times come
#: back rounded (to the microsecond, or the millisecond), and a bound must not cut the session off.
KEY_SLACK = 1e-3
#: A sweep is taken before it is due, where it costs no more requests than the steady read, only while
#: the band holds at most this many known rows (``plan_read``).
MAX_EARLY_SWEEP_ROWS = 100


@dataclass(frozen=True)
class ReadPlan:
    """Where a cycle's list read starts, and which pending sessions it leaves to one-by-one lookups."""

    since: float
    stale: tuple[str, ...]
    #: The read covers the late-write band (a sweep): everything back to ``reach``.
    sweep: bool
    #: The read reaches back past the newest key time to cover pending sessions.
    reaches_back: bool = False

    @property
    def stop_at_known(self) -> bool:
        """Whether a newest-first read may stop at the first counted session it meets: a steady read
        that reaches back for no pending session (everything past a known session was read before)."""
        return not self.sweep and not self.reaches_back


def plan_read(
    state: SourceState, floor: float, overlap: float, page_size: int, reach: float, sweep_due: bool, lookups: bool
) -> ReadPlan:
    """The cheapest read that still sees everything (pure).

    ``reach`` is how far back late writes may have landed since the last sweep: the watermark at that
    sweep minus ``overlap`` (a session may be written up to ``overlap`` behind the newest). A sweep
    reads back to it; it is due once per overlap period (``sweep_due``), and taken earlier whenever it
    costs no more requests than the steady read and reads no more than ``MAX_EARLY_SWEEP_ROWS`` known
    rows, or the steady read reaches back for pending sessions anyway (a page of a thousand known rows,
    free in requests, is not free to read every cycle). A steady cycle reads only what is newer than
    the newest key time, and reaches back just as far as it pays: each pending session is either
    inside the list read or looked up alone, whichever costs fewer requests, estimated from the ids
    known in that range. Without lookups (``lookups`` False) the read reaches back to the oldest
    pending session.
    """
    cutoff = window_cutoff(floor, state.watermark, overlap)
    # Steady: from the newest key time, inclusive (keys of one-second resolution, as Dify's, share it
    # with sessions written since); a newest-first reader stops at the first session it knows.
    steady_since = max(floor, state.watermark) if state.watermark is not None else cutoff
    sweep_since = min(reach, steady_since)
    known = state.known_rows()
    # Ids are remembered only inside the retained window: further back, the window's density stands in.
    oldest_known = min(reach, cutoff)
    span = (state.watermark - oldest_known) if state.watermark is not None else overlap
    density = known.count(oldest_known) / max(span, 1.0)

    def pages(start: float) -> int:
        estimate = known.count(start) + max(0.0, oldest_known - start) * density
        return int(estimate) // page_size + 1  # one more page for what is new

    # Without lookups only the oldest pending session matters; with them, all of them, newest first.
    by_key = sorted(((p.key_time, sid) for sid, p in state.pending.items()), reverse=True) if lookups else []
    newest_first = [-key_time for key_time, _ in by_key]
    oldest_pending = min((p.key_time for p in state.pending.values()), default=None) if not lookups else None

    def cheapest(since: float, sweep: bool) -> tuple[int, ReadPlan]:
        # A pending session keyed at ``since`` itself is covered as an older one: the read must go past
        # every row of that key time (keys of one-second resolution are shared by many rows), not stop
        # at the first known one.
        older = by_key[bisect.bisect_left(newest_first, -since) :]
        # A steady read that reaches back for nothing stops at the first session it knows: one page
        # (the new ones, which no estimate here sees, cost the same whichever plan is taken).
        first = 1 if not sweep else pages(since)
        if not lookups:
            if oldest_pending is None or oldest_pending > since:
                return first, ReadPlan(since, (), sweep)
            start = oldest_pending - KEY_SLACK
            return pages(start), ReadPlan(min(since, start), (), sweep, reaches_back=True)
        if not older:
            return first, ReadPlan(since, (), sweep)
        reach_to, best_cost = None, first + len(older)  # None: every one looked up
        # Reaching back to older[i] costs pages(older[i]) and the lookups of those older still. pages() only
        # grows with i, so the cheapest i of each run of one page count is its last: only those are priced
        # (found by bisection), the first cheapest taken.
        last = len(older) - 1
        position = 0
        while position <= last:
            count = pages(older[position][0])
            low, high = position, last
            while low < high:
                middle = (low + high + 1) // 2
                low, high = (middle, high) if pages(older[middle][0]) == count else (low, middle - 1)
            if count + last - low < best_cost:
                reach_to, best_cost = older[low][0], count + last - low
            position = low + 1
        if reach_to is None:
            return best_cost, ReadPlan(since, tuple(sid for _, sid in older), sweep)
        return best_cost, ReadPlan(
            reach_to - KEY_SLACK, tuple(sid for key_time, sid in older if key_time < reach_to), sweep, reaches_back=True
        )

    sweep_cost, sweep_plan = cheapest(sweep_since, sweep=True)
    if state.watermark is None or sweep_due:
        return sweep_plan
    steady_cost, steady_plan = cheapest(steady_since, sweep=False)
    if steady_plan.since <= sweep_since or (
        sweep_cost <= steady_cost and (steady_plan.reaches_back or known.count(sweep_since) <= MAX_EARLY_SWEEP_ROWS)
    ):
        return sweep_plan  # the steady read would reach as far, or costs as much and reads about as much: it sweeps too
    return steady_plan
