"""When a source's overlap window is swept for late writes, and what a probe standing in for a
sweep compares the list with. Pure bookkeeping: the poller does the reading.

A session may be written up to ``overlap`` behind the newest one seen. A sweep reads back to the
newest key time *at the previous sweep* minus ``overlap``, so anything written since is inside it.
A probe (``Provider.band_holds``) asked after a steady read vouches only for what was written
before it: after one, the next sweep reaches back from the watermark that cycle began with.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from agent_session_exporter.count.state import SourceState, window_cutoff
from agent_session_exporter.model import KnownRows


@dataclass
class SweepSchedule:
    overlap: float
    #: When the window was last known free of late writes (None: sweep at the next cycle), and
    #: the watermark a session written since may be keyed up to ``overlap`` behind.
    last_sweep: float | None = None
    swept_watermark: float | None = None
    #: A probe found rows written late, or could not tell: the next cycle sweeps without asking.
    needed: bool = False
    #: Rows of the list that are not sessions (id to key time), which a probe must count too; in
    #: memory only (after a restart the first cycle sweeps).
    skipped_rows: dict[str, float] = field(default_factory=dict)

    def reach(self, floor: float, watermark: float | None) -> float:
        """How far back late writes may have landed since the last sweep."""
        return window_cutoff(floor, self.swept_watermark if self.last_sweep is not None else watermark, self.overlap)

    def due(self, now: float) -> bool:
        return self.last_sweep is None or self.needed or now - self.last_sweep >= self.overlap

    @property
    def may_probe(self) -> bool:
        """Whether a due sweep may be replaced by a probe (not the first cycle's, nor after a failed probe)."""
        return self.last_sweep is not None and not self.needed

    def swept(self, now: float, watermark: float | None) -> None:
        self.last_sweep, self.swept_watermark, self.needed = now, watermark, False

    def probed(self, clean: bool | None, now: float, watermark_before: float | None) -> None:
        if clean:
            self.swept(now, watermark_before)
        else:
            self.needed = True

    def note_skipped(self, skipped: dict[str, float], keep_from: float) -> None:
        """Remember the rows that are not sessions as long as a probe may cover them."""
        rows = self.skipped_rows
        rows.update(skipped)
        for row_id in [row_id for row_id, key_time in rows.items() if key_time < keep_from]:
            del rows[row_id]

    def known_rows(self, state: SourceState) -> KnownRows:
        """Every row of the list the exporter knows: counted, pending, or not a session."""
        return state.known_rows(self.skipped_rows.values())
