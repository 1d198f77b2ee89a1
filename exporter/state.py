"""Per-source collection state, the change one cycle makes to it, and where it is kept."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Protocol

from .aggregates import SourceTotals


@dataclass(slots=True)
class PendingSession:
    """A session last seen active, re-checked every cycle until it finishes."""

    key_time: float
    status: str
    first_seen: float
    #: For settling sessions (no upstream status): the last end time and when it took that value.
    end_time: float | None = None
    end_seen_at: float | None = None


@dataclass
class SourceState:
    #: Cutoff of the source's first cycle: nothing older is ever read.
    floor: float | None = None
    #: Newest key time seen; the window reaches back to it minus the overlap.
    watermark: float | None = None
    pending: dict[str, PendingSession] = field(default_factory=dict)
    #: Counted session ids that can still reappear in the window, with their key time.
    counted: dict[str, float] = field(default_factory=dict)
    totals: SourceTotals = field(default_factory=SourceTotals)

    def active_by_status(self, label: Callable[[str], str] = str) -> dict[str, int]:
        """Pending sessions by status, each status through ``label`` (the label cap)."""
        counts: dict[str, int] = {}
        for pending in self.pending.values():
            status = label(pending.status)
            counts[status] = counts.get(status, 0) + 1
        return counts


def window_cutoff(floor: float, watermark: float | None, overlap: float) -> float:
    """The oldest key time a cycle still reads: the watermark minus the overlap, never below the floor."""
    return floor if watermark is None else max(floor, watermark - overlap)


@dataclass
class CycleDelta:
    """Everything one cycle changes; committed in one transaction, then applied."""

    floor: float | None
    watermark: float | None
    counted_add: dict[str, float] = field(default_factory=dict)
    counted_remove: list[str] = field(default_factory=list)
    pending_upsert: dict[str, PendingSession] = field(default_factory=dict)
    pending_remove: list[str] = field(default_factory=list)
    increments: SourceTotals = field(default_factory=SourceTotals)

    def apply_to(self, state: SourceState) -> None:
        state.floor = self.floor
        state.watermark = self.watermark
        state.counted.update(self.counted_add)
        for session_id in self.counted_remove:
            state.counted.pop(session_id, None)
        for session_id in self.pending_remove:
            state.pending.pop(session_id, None)
        state.pending.update(self.pending_upsert)
        state.totals.add(self.increments)


class Store(Protocol):
    def attach(self, snapshot: Callable[[], dict[str, SourceState]], on_recreate: Callable[[], None]) -> None: ...
    def load(self, source: str) -> SourceState: ...
    def commit(self, source: str, delta: CycleDelta, totals: SourceTotals) -> None: ...
    def retain_only(self, providers: dict[str, str]) -> list[str]: ...
    def close(self) -> None: ...


class MemoryStore:
    """No persistence (no state_path): the collectors' state objects, kept for config reloads."""

    def __init__(self) -> None:
        self.states: dict[str, SourceState] = {}
        self.providers: dict[str, str] = {}

    def attach(self, snapshot: Callable[[], dict[str, SourceState]], on_recreate: Callable[[], None]) -> None:
        return None  # nothing on disk to lose

    def load(self, source: str) -> SourceState:
        return self.states.setdefault(source, SourceState())

    def commit(self, source: str, delta: CycleDelta, totals: SourceTotals) -> None:
        return None  # the collector applies the delta to the very object load() returned

    def retain_only(self, providers: dict[str, str]) -> list[str]:
        """Keep the state of sources still configured with the same provider (name -> provider)."""
        dropped = [name for name in self.states if self.providers.get(name) != providers.get(name)]
        for name in dropped:
            del self.states[name]
        self.providers = dict(providers)
        return dropped

    def close(self) -> None:
        return None
