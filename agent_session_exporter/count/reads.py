"""What one cycle of a source reads, planned before the poll (pure bookkeeping: the poller reads):
from where in the list, whether the late-write band is swept or a probe stands in for the sweep, and
which stale pending sessions are looked up one by one (``LookupRotation``; ``count/read_plan.py``:
``plan_read``, the cheapest read; ``count/sweeps.py``: when a sweep is due)."""

from __future__ import annotations

from dataclasses import dataclass

from agent_session_exporter.count.read_plan import ReadPlan, plan_read
from agent_session_exporter.count.state import SourceState, window_cutoff
from agent_session_exporter.count.sweeps import SweepSchedule
from agent_session_exporter.model import PendingRef


@dataclass(frozen=True)
class CycleRead:
    #: The oldest key time the source ever counts (the first cycle's start minus ``initial_lookback``).
    floor: float
    #: How far back late writes may have landed since the last sweep.
    reach: float
    #: The oldest key time this cycle counts (older items are not ours, unless pending).
    cutoff: float
    plan: ReadPlan
    #: The stale pending sessions looked up one by one.
    stale: tuple[PendingRef, ...]
    #: The band a probe checks after the read, standing in for a due sweep (None: no probe).
    band: tuple[float, float] | None = None

    @property
    def keep_from(self) -> float | None:
        """Counted ids this recent are kept even behind the new window: the next sweep reaches back to
        them (None: the read sweeps, and the window alone decides)."""
        return None if self.plan.sweep else self.reach


class ReadPlanner:
    """Plans each cycle's read of one source, and keeps what that needs across cycles: when the band
    was last swept (``sweeps``), and when each stale pending session was last looked up."""

    def __init__(self, overlap: float, initial_lookback: float, max_pending_checks: int, lookups: bool, probes: bool) -> None:
        self.overlap = overlap
        self.initial_lookback = initial_lookback
        self.max_pending_checks = max_pending_checks
        #: Whether stale pending sessions are looked up one by one (else the read reaches back to them).
        self.lookups = lookups
        #: Whether the provider can vouch for a band of its list in a request or two (``Provider.PROBES``).
        self.probes = probes
        self.sweeps = SweepSchedule(overlap)
        self.rotation = LookupRotation()

    def plan(self, state: SourceState, now: float, page_size: int, trust_order: bool) -> CycleRead:
        """The cycle's read at ``now``; a due sweep that costs more than the steady read becomes the
        steady read and a probe of the band beyond it, where the provider probes and its order holds."""
        floor = state.floor if state.floor is not None else now - self.initial_lookback
        reach = self.sweeps.reach(floor, state.watermark)
        cutoff = min(reach, window_cutoff(floor, state.watermark, self.overlap))
        read = self._read(state, floor, reach, page_size, self.sweeps.due(now))
        band: tuple[float, float] | None = None
        if read.sweep and self.probes and self.sweeps.may_probe and trust_order:
            steady = self._read(state, floor, reach, page_size, sweep_due=False)
            if not steady.sweep and steady.since > reach:
                read, band = steady, (reach, steady.since)
        stale = self.rotation.choose(state, read.stale, self.max_pending_checks)
        return CycleRead(floor, reach, cutoff, read, stale, band)

    def committed(self, cycle: CycleRead, now: float, watermark: float | None, skipped: dict[str, float]) -> None:
        """A cycle's read was committed (the state's watermark now ``watermark``): its sweep is noted,
        and the rows it read that are not sessions are kept as long as a probe may cover them."""
        if cycle.plan.sweep:
            self.sweeps.swept(now, watermark)
        keep_from = cycle.keep_from
        self.sweeps.note_skipped(skipped, window_cutoff(cycle.floor, watermark, self.overlap) if keep_from is None else keep_from)

    def _read(self, state: SourceState, floor: float, reach: float, page_size: int, sweep_due: bool) -> ReadPlan:
        return plan_read(state, floor, self.overlap, page_size, reach, sweep_due, lookups=self.lookups)


class LookupRotation:
    """Which of the pending sessions a read leaves to lookups are looked up this cycle: at most
    ``limit``, those looked up longest ago first, so that under a capped budget every one has its turn."""

    def __init__(self) -> None:
        #: The round of each stale pending session's last lookup (0: not looked up yet).
        self._looked_up: dict[str, int] = {}
        self._rounds = 0

    def choose(self, state: SourceState, ids: tuple[str, ...], limit: int) -> tuple[PendingRef, ...]:
        pending = state.pending
        stale = [PendingRef(sid, pending[sid].key_time) for sid in ids]
        self._rounds += 1
        self._looked_up = {ref.session_id: self._looked_up.get(ref.session_id, 0) for ref in stale}
        chosen = sorted(stale, key=lambda ref: (self._looked_up[ref.session_id], ref.key_time))[:limit]
        for ref in chosen:
            self._looked_up[ref.session_id] = self._rounds
        return tuple(chosen)
