"""The session counters as plain data, and the prometheus_client Collector that renders them.

Plain dicts keep ingestion cheap (a dict increment, not a labelled-metric lookup) and let the
state store persist and restore exactly what is rendered.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field
from typing import Iterable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from .model import Outcome, SessionRecord

MAX_LABEL_LENGTH = 64
OTHER = "other"
_OUTCOME_LABEL = {outcome: outcome.value for outcome in Outcome}


@dataclass
class SourceTotals:
    """Counter values of one source; also used as the increment of one cycle."""

    finished: dict[tuple[str, str], int] = field(default_factory=dict)   # (status, outcome)
    duration_buckets: dict[str, list[int]] = field(default_factory=dict)  # outcome -> per-bucket counts, +Inf last
    duration_sum: dict[str, float] = field(default_factory=dict)
    #: The bucket bounds the histogram counts refer to (the config's duration_buckets).
    bounds: list[float] = field(default_factory=list)
    warnings: float = 0.0
    errors: int = 0
    tokens: dict[str, float] = field(default_factory=dict)
    cost: dict[str, float] = field(default_factory=dict)                 # model -> USD

    def plus(self, other: SourceTotals) -> SourceTotals:
        """A new SourceTotals holding self + other."""
        result = SourceTotals()
        result.add(self)
        result.add(other)
        return result

    def add(self, other: SourceTotals) -> None:
        if other.bounds:
            self.bounds = list(other.bounds)
        for key, value in other.finished.items():
            self.finished[key] = self.finished.get(key, 0) + value
        for outcome, counts in other.duration_buckets.items():
            mine = self.duration_buckets.setdefault(outcome, [0] * len(counts))
            for i, count in enumerate(counts):
                mine[i] += count
        for outcome, value in other.duration_sum.items():
            self.duration_sum[outcome] = self.duration_sum.get(outcome, 0.0) + value
        self.warnings += other.warnings
        self.errors += other.errors
        for kind, value in other.tokens.items():
            self.tokens[kind] = self.tokens.get(kind, 0.0) + value
        for model, value in other.cost.items():
            self.cost[model] = self.cost.get(model, 0.0) + value


    def drop_non_finite(self) -> list[str]:
        """Reset to zero any figure that is infinite or NaN (an older version could persist one);
        return the names of those reset."""
        reset = []
        for name in ("warnings",):
            if not math.isfinite(getattr(self, name)):
                setattr(self, name, 0.0)
                reset.append(name)
        for name in ("duration_sum", "tokens", "cost"):
            values: dict[str, float] = getattr(self, name)
            for key in [k for k, v in values.items() if not math.isfinite(v)]:
                del values[key]
                reset.append(f"{name}[{key}]")
        return reset


class LabelLimiter:
    """Caps the distinct values of one upstream-supplied label; the rest become ``other``."""

    def __init__(self, max_values: int, known: Iterable[str] = ()) -> None:
        self.max_values = max_values
        self.values: set[str] = set(known)

    def __call__(self, value: str) -> str:
        value = value[:MAX_LABEL_LENGTH]
        if value in self.values:
            return value
        if len(self.values) >= self.max_values:
            return OTHER
        self.values.add(value)
        return value


class TotalsBuilder:
    """Turns finished records into the increment of one source cycle."""

    def __init__(self, buckets: tuple[float, ...], status_label: LabelLimiter, model_label: LabelLimiter) -> None:
        self.buckets = buckets
        self.status_label = status_label
        self.model_label = model_label
        self.totals = SourceTotals(bounds=list(buckets))
        self._keys: dict[tuple[str, str], tuple[str, str]] = {}  # (status, outcome) -> label values

    def add(self, record: SessionRecord) -> None:
        assert record.outcome is not None
        totals = self.totals
        outcome = _OUTCOME_LABEL[record.outcome]
        key = (record.status, outcome)
        label_key = self._keys.get(key)
        if label_key is None:
            label_key = self._keys[key] = (self.status_label(record.status), outcome)
        totals.finished[label_key] = totals.finished.get(label_key, 0) + 1
        duration = record.duration_seconds
        if duration is not None:
            counts = totals.duration_buckets.get(outcome)
            if counts is None:
                counts = totals.duration_buckets[outcome] = [0] * (len(self.buckets) + 1)
            counts[bisect.bisect_left(self.buckets, duration)] += 1
            totals.duration_sum[outcome] = totals.duration_sum.get(outcome, 0.0) + duration
        totals.warnings += record.warnings
        totals.errors += record.counts_as_error
        if record.tokens:
            for kind, value in record.tokens.items():
                totals.tokens[kind] = totals.tokens.get(kind, 0.0) + value
        if record.cost_usd is not None:
            model = self.model_label(record.model or "unknown")
            totals.cost[model] = totals.cost.get(model, 0.0) + record.cost_usd


@dataclass
class SourceView:
    """What is rendered for one source: its totals and the active gauge."""

    provider: str
    totals: SourceTotals = field(default_factory=SourceTotals)
    active: dict[str, int] = field(default_factory=dict)
    #: The optional figures the provider supplies; no series is exported for the others.
    figures: frozenset[str] = frozenset({"warnings", "tokens", "cost"})


class SessionMetrics(Collector):
    """Renders every configured source's aggregates at scrape time."""

    def __init__(self, buckets: tuple[float, ...]) -> None:
        self.buckets = buckets
        self.sources: dict[str, SourceView] = {}

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        base = ["source", "provider"]
        finished = CounterMetricFamily("agent_sessions_finished", "Sessions first seen in a terminal status, each once.",
                                       labels=base + ["status", "outcome"])
        active = GaugeMetricFamily("agent_sessions_active", "Sessions last seen in a non-terminal status.",
                                   labels=base + ["status"])
        duration = HistogramMetricFamily("agent_session_duration_seconds", "Duration of finished sessions.",
                                         labels=base + ["outcome"])
        warnings = CounterMetricFamily("agent_session_warnings", "Provider-reported warnings of finished sessions.",
                                       labels=base)
        errors = CounterMetricFamily("agent_session_errors", "Finished sessions with outcome error or timeout, "
                                     "or with an error text.", labels=base)
        tokens = CounterMetricFamily("agent_session_tokens", "Tokens of finished sessions.",
                                     labels=base + ["token_type"])
        cost = CounterMetricFamily("agent_session_cost_usd", "Cost of finished sessions in US dollars.",
                                   labels=base + ["model"])
        bounds = [floatToGoString(b) for b in self.buckets] + ["+Inf"]
        for name, view in list(self.sources.items()):
            labels = [name, view.provider]
            totals = view.totals
            for (status, outcome), value in sorted(totals.finished.items()):
                finished.add_metric(labels + [status, outcome], value)
            for status, value in sorted(view.active.items()):
                active.add_metric(labels + [status], value)
            for outcome, counts in sorted(totals.duration_buckets.items()):
                cumulative, running = [], 0
                for bound, count in zip(bounds, counts, strict=True):
                    running += count
                    cumulative.append((bound, running))
                duration.add_metric(labels + [outcome], cumulative, totals.duration_sum.get(outcome, 0.0))
            if "warnings" in view.figures:
                warnings.add_metric(labels, totals.warnings)
            errors.add_metric(labels, totals.errors)
            for kind, value in sorted(totals.tokens.items()):
                tokens.add_metric(labels + [kind], value)
            for model, value in sorted(totals.cost.items()):
                cost.add_metric(labels + [model], value)
        yield from (finished, active, duration, warnings, errors, tokens, cost)
