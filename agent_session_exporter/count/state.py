"""Per-source collection state, and the change one cycle makes to it (kept by ``keep/``)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from agent_session_exporter.model import KnownRows


@dataclass
class SourceTotals:
    """Counter values of one source, per workflow ("" where the provider has none); also used as
    the increment of one cycle."""

    finished: dict[tuple[str, str, str], int] = field(default_factory=dict)  # (workflow, status, outcome)
    #: (workflow, outcome) -> per-bucket counts, +Inf last
    duration_buckets: dict[tuple[str, str], list[int]] = field(default_factory=dict)
    duration_sum: dict[tuple[str, str], float] = field(default_factory=dict)
    #: The bucket bounds the histogram counts refer to (the config's duration_buckets).
    bounds: list[float] = field(default_factory=list)
    warnings: dict[str, float] = field(default_factory=dict)  # workflow -> count
    errors: dict[str, int] = field(default_factory=dict)  # workflow -> count
    tokens: dict[tuple[str, str], float] = field(default_factory=dict)  # (workflow, token type)
    cost: dict[tuple[str, str], float] = field(default_factory=dict)  # (workflow, model) -> USD
    #: workflow -> its display name (not a counter: the newest name wins); kept so that
    #: ``agent_session_workflow_info`` survives a restart
    names: dict[str, str] = field(default_factory=dict)
    #: The label sets (workflow, status) the active gauge has a series for (not a counter: its series
    #: come and go with the pending sessions, and are kept so that they fold alike after a restart).
    active_series: set[tuple[str, str]] = field(default_factory=set)
    #: (family, label) -> the values of that label a family folded into ``other`` past its series
    #: budget, in the order they folded (``count/budget.py: SeriesBudget``).
    folded: dict[tuple[str, str], list[str]] = field(default_factory=dict)

    def plus(self, other: SourceTotals) -> SourceTotals:
        """A new SourceTotals holding self + other."""
        result = SourceTotals()
        result.add(self)
        result.add(other)
        return result

    def add(self, other: SourceTotals) -> None:
        if other.bounds:
            self.bounds = list(other.bounds)
        for key, counts in other.duration_buckets.items():
            mine = self.duration_buckets.setdefault(key, [0] * len(counts))
            for i, count in enumerate(counts):
                mine[i] += count
        self.names.update(other.names)
        self.active_series |= other.active_series
        for key, values in other.folded.items():
            mine_folded = self.folded.setdefault(key, [])
            mine_folded.extend(value for value in values if value not in mine_folded)
        for name in ("finished", "duration_sum", "warnings", "errors", "tokens", "cost"):
            mine, theirs = getattr(self, name), getattr(other, name)
            for key, value in theirs.items():
                mine[key] = mine.get(key, 0) + value

    def is_empty(self) -> bool:
        """Whether these totals (an increment) hold nothing: no count, no name, no series noted."""
        return not (
            self.finished
            or self.duration_buckets
            or self.duration_sum
            or self.warnings
            or self.errors
            or self.tokens
            or self.cost
            or self.names
            or self.active_series
            or self.folded
        )

    def rebucket(self, bounds: list[float]) -> list[float] | None:
        """Restored histogram counts are only meaningful with the buckets they were counted in: under
        other ``bounds`` the histogram restarts from zero. The bounds it had, where counts were dropped."""
        if self.bounds == bounds:
            return None
        dropped = list(self.bounds) if self.duration_buckets else None
        self.duration_buckets.clear()
        self.duration_sum.clear()
        self.bounds = list(bounds)
        return dropped

    def workflows(self) -> set[str]:
        """Every workflow these totals hold a value for."""
        keyed = (*self.finished, *self.duration_buckets, *self.tokens, *self.cost)
        return {key[0] for key in keyed} | set(self.warnings) | set(self.errors)

    def make_safe(self, clean: Callable[[str], str]) -> int:
        """Pass every label key and workflow name through ``clean`` (``safetext.safe_text``: a state
        file written before labels were made safe may hold any string), merging the keys that
        become one so no count is lost; return how many keys changed."""
        changed = 0

        def safe_key(key: Any) -> Any:
            return tuple(clean(part) for part in key) if isinstance(key, tuple) else clean(key)

        for name in ("finished", "duration_buckets", "duration_sum", "warnings", "errors", "tokens", "cost"):
            values: dict[Any, Any] = getattr(self, name)
            merged: dict[Any, Any] = {}
            for key, value in values.items():
                new = safe_key(key)
                changed += new != key
                if new not in merged:
                    merged[new] = list(value) if isinstance(value, list) else value
                elif isinstance(value, list):
                    merged[new] = [a + b for a, b in zip(merged[new], value, strict=True)]
                else:
                    merged[new] += value
            setattr(self, name, merged)
        changed += sum(clean(workflow) != workflow or clean(name) != name for workflow, name in self.names.items())
        self.names = {clean(workflow): clean(name) for workflow, name in self.names.items()}
        active_series = {safe_key(key) for key in self.active_series}
        changed += len(self.active_series - active_series)
        self.active_series = active_series
        folded: dict[tuple[str, str], list[str]] = {}
        for key, folded_values in self.folded.items():
            kept = folded.setdefault(safe_key(key), [])
            for value in folded_values:
                changed += clean(value) != value
                if clean(value) not in kept:
                    kept.append(clean(value))
        self.folded = folded
        return changed

    def drop_non_finite(self) -> list[str]:
        """Reset to zero any figure that is infinite or NaN (an older version could persist one);
        return the names of those reset."""
        reset = []
        for name in ("warnings", "duration_sum", "tokens", "cost"):
            values: dict[Any, float] = getattr(self, name)
            for key in [k for k, v in values.items() if not math.isfinite(v)]:
                del values[key]
                reset.append(f"{name}[{key}]")
        return reset


@dataclass(slots=True)
class PendingSession:
    """A session last seen active, re-checked every cycle until it finishes."""

    key_time: float
    status: str
    first_seen: float
    #: For settling sessions (no upstream status): the last end time and when it took that value.
    end_time: float | None = None
    end_seen_at: float | None = None
    workflow: str = ""


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

    def known_rows(self, more: Iterable[float] = ()) -> KnownRows:
        """The key times of every session known (counted or pending), and ``more``."""
        return KnownRows(sorted([*self.counted.values(), *(p.key_time for p in self.pending.values()), *more]))

    def active_by_status(
        self, label: Callable[[str], str] = str, workflow_label: Callable[[str], str] = str
    ) -> dict[tuple[str, str], int]:
        """Pending sessions by (workflow, status), each through its label cap."""
        counts: dict[tuple[str, str], int] = {}
        for pending in self.pending.values():
            key = (workflow_label(pending.workflow), label(pending.status))
            counts[key] = counts.get(key, 0) + 1
        return counts


def window_cutoff(floor: float, watermark: float | None, overlap: float) -> float:
    """The oldest key time a cycle still reads: the watermark minus the overlap, never below the floor."""
    return floor if watermark is None else max(floor, watermark - overlap)


def followed_ahead(newest: float, ahead: list[float], now: float, watermark: float | None, overlap: float) -> float:
    """How far the watermark follows key times past our clock: through them while each lies within
    ``overlap`` of the one before, from now (or the watermark). An upstream clock that runs ahead
    shows as such a run of key times, and is followed, so an idle cycle reads one page; one key time
    hours ahead (a client's wrong clock) stands apart, and is not: following it would put the window
    past every session written meanwhile, and they would never be read. Never behind the watermark."""
    before = watermark if watermark is not None else float("-inf")
    reach = max(now, before)
    for key_time in sorted(ahead):
        if key_time <= reach:
            continue
        if key_time - reach > overlap:
            break
        reach = key_time
    return max(min(newest, reach), before)


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

    def changes(self, state: SourceState) -> bool:
        """Whether applying this delta would change ``state`` (a cycle that changed nothing writes nothing)."""
        return (
            self.floor != state.floor
            or self.watermark != state.watermark
            or bool(self.counted_add)
            or bool(self.counted_remove)
            or bool(self.pending_upsert)
            or bool(self.pending_remove)
            or not self.increments.is_empty()
        )

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
