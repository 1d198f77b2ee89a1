"""The totals step: finished records become one cycle's increment of a source's counters, as plain
data, with each upstream label through its cap. ``serve/session_metrics.py`` renders them.

Plain dicts keep ingestion cheap (a dict increment, not a labelled-metric lookup) and let the
state store persist and restore exactly what is rendered.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Iterable

from agent_session_exporter.count.state import SourceTotals
from agent_session_exporter.model import Outcome, SessionRecord
from agent_session_exporter.safetext import is_safe

#: Label values from upstream are cut to this many characters (ids never are).
MAX_LABEL_LENGTH = 128
OTHER = "other"
_OUTCOME_LABEL = {outcome: outcome.value for outcome in Outcome}


class LabelLimiter:
    """Caps the distinct values of one upstream-supplied label; the rest become ``other`` (which
    takes no place of its own: it is where the rest go)."""

    def __init__(self, max_values: int, known: Iterable[str] = ()) -> None:
        self.max_values = max_values
        self.values: set[str] = set(known) - {OTHER}

    def __call__(self, value: str) -> str:
        value = value[:MAX_LABEL_LENGTH]
        if value in self.values or value == OTHER:
            return value
        if len(self.values) >= self.max_values:
            return OTHER
        self.values.add(value)
        return value


#: OpenMetrics allows 128 characters of exemplar label names and values together.
_EXEMPLAR_ID_MAX = 128 - len("session_id")


@dataclass(frozen=True, slots=True)
class SessionExemplar:
    """A recent session of one series: its id, the observed value and when it ended."""

    session_id: str
    value: float
    timestamp: float


class TotalsBuilder:
    """Turns finished records into the increment of one source cycle, and notes for each series a
    recent session (an exemplar) and each workflow's name."""

    def __init__(self, buckets: tuple[float, ...], status_label: LabelLimiter, model_label: LabelLimiter,
                 workflow_label: LabelLimiter | None = None, now: float = 0.0) -> None:
        self.buckets = buckets
        self.status_label = status_label
        self.model_label = model_label
        self.workflow_label = workflow_label or LabelLimiter(0, ("",))
        self.now = now
        self.totals = SourceTotals(bounds=list(buckets))
        #: (workflow, status, outcome) -> the newest session counted in that series
        self.finished_exemplars: dict[tuple[str, str, str], SessionRecord] = {}
        #: (workflow, outcome, bucket index) -> the newest session observed in that bucket
        self.duration_exemplars: dict[tuple[str, str, int], SessionRecord] = {}
        #: The finished records of this cycle that ended in error or timeout, for the landing page.
        self.failures: list[SessionRecord] = []
        #: (workflow, status, outcome) -> (label values, duration series, error outcome?)
        self._keys: dict[tuple[str, str, str], tuple[tuple[str, str, str], tuple[str, str], bool]] = {}
        self._bounds = len(buckets) + 1

    def add(self, record: SessionRecord) -> None:
        """Count one finished record (the hot path of ingestion: kept to plain dict operations)."""
        outcome = record.outcome
        assert outcome is not None
        key = (record.workflow, record.status, outcome)
        labels = self._keys.get(key)
        if labels is None:
            labels = self._label(key)
        label_key, series, failed = labels
        workflow = series[0]
        totals = self.totals
        finished = totals.finished
        finished[label_key] = finished.get(label_key, 0) + 1
        session_id = record.session_id
        # An id is never altered (``safetext``): one with a control character is no exemplar, nor one
        # with a quote (prometheus_client's OpenMetrics parser, 0.26, misreads it escaped there).
        exemplary = len(session_id) <= _EXEMPLAR_ID_MAX and is_safe(session_id) and '"' not in session_id
        if exemplary:
            self.finished_exemplars[label_key] = record
        duration = record.duration_seconds
        if duration is not None:
            counts = totals.duration_buckets.get(series)
            if counts is None:
                counts = totals.duration_buckets[series] = [0] * self._bounds
            bucket = bisect.bisect_left(self.buckets, duration)
            counts[bucket] += 1
            sums = totals.duration_sum
            sums[series] = sums.get(series, 0.0) + duration
            if exemplary:
                self.duration_exemplars[(workflow, series[1], bucket)] = record
        if record.warnings:
            totals.warnings[workflow] = totals.warnings.get(workflow, 0.0) + record.warnings
        if failed:
            self.failures.append(record)
            totals.errors[workflow] = totals.errors.get(workflow, 0) + 1
        elif record.error_text and outcome is not Outcome.CANCELLED:  # SessionRecord.counts_as_error, inlined
            totals.errors[workflow] = totals.errors.get(workflow, 0) + 1
        if record.tokens:
            tokens = totals.tokens
            for kind, value in record.tokens.items():
                tokens_key = (workflow, kind)
                tokens[tokens_key] = tokens.get(tokens_key, 0.0) + value
        if record.cost_usd is not None:
            cost_key = (workflow, self.model_label(record.model or "unknown"))
            totals.cost[cost_key] = totals.cost.get(cost_key, 0.0) + record.cost_usd

    def _label(self, key: tuple[str, Outcome]) -> tuple[tuple[str, str, str], tuple[str, str], bool]:
        workflow, status, outcome = key
        label = _OUTCOME_LABEL[outcome]
        workflow_label = self.workflow_label(workflow)
        labels = ((workflow_label, self.status_label(status), label), (workflow_label, label),
                  outcome in (Outcome.ERROR, Outcome.TIMEOUT))
        self._keys[key] = labels
        return labels

    def exemplar(self, record: SessionRecord, value: float) -> SessionExemplar:
        """The exemplar of one counted record: ``value`` at its end (never after this cycle)."""
        ended = record.finished_at
        return SessionExemplar(record.session_id, value,
                               ended if ended is not None and ended <= self.now else self.now)

    def name_workflows(self, records: Iterable[SessionRecord], known: dict[str, str]) -> None:
        """Note the display name of each workflow that is new or renamed (``known``: the names so far)."""
        for record in records:
            if record.workflow and record.workflow_name:
                workflow = self.workflow_label(record.workflow)
                name = record.workflow_name[:MAX_LABEL_LENGTH]
                if workflow != OTHER and known.get(workflow) != name:
                    self.totals.names[workflow] = name


@dataclass
class SourceView:
    """What is rendered for one source: its totals, the active gauge, exemplars and workflow names."""

    provider: str
    totals: SourceTotals = field(default_factory=SourceTotals)
    #: (workflow, status) -> sessions active
    active: dict[tuple[str, str], int] = field(default_factory=dict)
    #: The optional figures the provider supplies; no series is exported for the others.
    figures: frozenset[str] = frozenset({"warnings", "tokens", "cost"})
    finished_exemplars: dict[tuple[str, str, str], SessionExemplar] = field(default_factory=dict)
    duration_exemplars: dict[tuple[str, str, int], SessionExemplar] = field(default_factory=dict)


