"""The session counters as plain data, and the prometheus_client Collector that renders them.

Plain dicts keep ingestion cheap (a dict increment, not a labelled-metric lookup) and let the
state store persist and restore exactly what is rendered.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from .model import Outcome, SessionRecord
from .state import SourceTotals

MAX_LABEL_LENGTH = 64
OTHER = "other"
_OUTCOME_LABEL = {outcome: outcome.value for outcome in Outcome}


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
    """Renders every configured source's aggregates at scrape time, from the snapshots ``views``
    hands it (source name -> SourceView)."""

    def __init__(self, buckets: tuple[float, ...], views: Callable[[], dict[str, SourceView]]) -> None:
        self.buckets = buckets
        self.views = views

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
        for name, view in self.views().items():
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
