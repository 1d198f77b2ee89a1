"""Per-source collection state, the change one cycle makes to it, and where it is kept."""

from __future__ import annotations

import bisect
import functools
import json
import math
from dataclasses import dataclass, field, fields
from typing import Any, Callable, Iterable, Protocol, get_args, get_origin, get_type_hints


@dataclass
class SourceTotals:
    """Counter values of one source, per workflow ("" where the provider has none); also used as
    the increment of one cycle."""

    finished: dict[tuple[str, str, str], int] = field(default_factory=dict)   # (workflow, status, outcome)
    #: (workflow, outcome) -> per-bucket counts, +Inf last
    duration_buckets: dict[tuple[str, str], list[int]] = field(default_factory=dict)
    duration_sum: dict[tuple[str, str], float] = field(default_factory=dict)
    #: The bucket bounds the histogram counts refer to (the config's duration_buckets).
    bounds: list[float] = field(default_factory=list)
    warnings: dict[str, float] = field(default_factory=dict)                 # workflow -> count
    errors: dict[str, int] = field(default_factory=dict)                     # workflow -> count
    tokens: dict[tuple[str, str], float] = field(default_factory=dict)       # (workflow, token type)
    cost: dict[tuple[str, str], float] = field(default_factory=dict)         # (workflow, model) -> USD
    #: workflow -> its display name (not a counter: the newest name wins); kept so that
    #: ``agent_session_workflow_info`` survives a restart
    names: dict[str, str] = field(default_factory=dict)

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
        for name in ("finished", "duration_sum", "warnings", "errors", "tokens", "cost"):
            mine, theirs = getattr(self, name), getattr(other, name)
            for key, value in theirs.items():
                mine[key] = mine.get(key, 0) + value

    def workflows(self) -> set[str]:
        """Every workflow these totals hold a value for."""
        keyed = (*self.finished, *self.duration_buckets, *self.tokens, *self.cost)
        return {key[0] for key in keyed} | set(self.warnings) | set(self.errors)

    def to_json(self) -> str:
        """The persisted form, derived from the fields: dicts keyed by tuples become lists of rows."""
        data: dict[str, Any] = {}
        hints = _hints(type(self))
        for spec in fields(self):
            value = getattr(self, spec.name)
            if _keyed_by_tuples(hints[spec.name]):
                value = [[*key, count] for key, count in value.items()]
            data[spec.name] = value
        return json.dumps(data, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> SourceTotals:
        """The inverse of ``to_json``, checking each value against its field's type; ValueError,
        KeyError or TypeError on anything else."""
        raw = _before_workflows(json.loads(text))
        hints = _hints(cls)
        values: dict[str, Any] = {}
        for spec in fields(cls):
            if spec.name in raw:
                values[spec.name] = _typed(raw[spec.name], hints[spec.name], spec.name)
            elif spec.name not in ("bounds", "names"):
                raise KeyError(spec.name)
        return cls(**values)

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


def _before_workflows(raw: Any) -> Any:
    """Totals persisted before the ``workflow`` label (one number of warnings and errors, no workflow
    in any key) become the totals of workflow ""."""
    if not isinstance(raw, dict) or not isinstance(raw.get("warnings"), (int, float)):
        return raw
    migrated = dict(raw)
    migrated["warnings"], migrated["errors"] = {"": raw["warnings"]}, {"": raw.get("errors")}
    if isinstance(raw.get("finished"), list):
        migrated["finished"] = [["", *row] if isinstance(row, list) else row for row in raw["finished"]]
    for name in ("duration_buckets", "duration_sum", "tokens", "cost"):
        if isinstance(raw.get(name), dict):
            migrated[name] = [["", key, value] for key, value in raw[name].items()]
    return migrated


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    """The field types of a dataclass (resolved once: ``to_json`` runs on every commit)."""
    return get_type_hints(cls)


def _keyed_by_tuples(hint: Any) -> bool:
    return get_origin(hint) is dict and get_origin(get_args(hint)[0]) is tuple


def _typed(value: Any, hint: Any, name: str) -> Any:
    """``value`` read from JSON as the type ``hint`` (float, int, str, list[...], dict[...], tuples as rows)."""
    origin, args = get_origin(hint), get_args(hint)
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"{name}: {value!r} is not a number")
        return float(value)
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{name}: {value!r} is not an integer")
        return value
    if hint is str:
        if not isinstance(value, str):
            raise TypeError(f"{name}: {value!r} is not a string")
        return value
    if origin is list:
        if not isinstance(value, list):
            raise TypeError(f"{name}: not a list")
        return [_typed(v, args[0], name) for v in value]
    if _keyed_by_tuples(hint):
        width = len(get_args(args[0]))
        if not isinstance(value, list) or not all(isinstance(row, list) and len(row) == width + 1 for row in value):
            raise TypeError(f"{name}: not a list of rows")
        return {tuple(_typed(k, str, name) for k in row[:width]): _typed(row[width], args[1], name) for row in value}
    if origin is dict:
        if not isinstance(value, dict):
            raise TypeError(f"{name}: not a mapping")
        return {_typed(k, args[0], name): _typed(v, args[1], name) for k, v in value.items()}
    raise TypeError(f"{name}: unsupported type {hint!r}")


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


@dataclass(frozen=True)
class KnownRows:
    """The key times of the rows of a list the exporter knows (counted, pending, or not sessions),
    oldest first: what the read planner estimates pages from, and a probe compares the list with."""

    key_times: list[float]

    def count(self, low: float, high: float = math.inf) -> int:
        """Rows known with key times in [``low``, ``high``]."""
        return bisect.bisect_right(self.key_times, high) - bisect.bisect_left(self.key_times, low)

    @property
    def newest(self) -> float | None:
        return self.key_times[-1] if self.key_times else None


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

    def active_by_status(self, label: Callable[[str], str] = str,
                         workflow_label: Callable[[str], str] = str) -> dict[tuple[str, str], int]:
        """Pending sessions by (workflow, status), each through its label cap."""
        counts: dict[tuple[str, str], int] = {}
        for pending in self.pending.values():
            key = (workflow_label(pending.workflow), label(pending.status))
            counts[key] = counts.get(key, 0) + 1
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
