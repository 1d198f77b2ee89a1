"""The totals step: finished records become one cycle's increment of a source's counters, as plain
data, with each upstream label through its cap and each family's label sets through its series
budget. ``serve/session_metrics.py`` renders them.

Plain dicts keep ingestion cheap (a dict increment, not a labelled-metric lookup) and let the
state store persist and restore exactly what is rendered.
"""

from __future__ import annotations

import bisect
import sys
from dataclasses import dataclass, field
from typing import Iterable

from agent_session_exporter.count.budget import COST, DURATION, FINISHED, TOKENS, SeriesBudget, fold_active
from agent_session_exporter.count.labels import MAX_LABEL_LENGTH, OTHER, LabelLimiter, label_limiters
from agent_session_exporter.count.state import SourceState, SourceTotals
from agent_session_exporter.model import Outcome, SessionRecord
from agent_session_exporter.safetext import is_safe

_OUTCOME_LABEL = {outcome: outcome.value for outcome in Outcome}


#: OpenMetrics allows 128 characters of exemplar label names and values together.
_EXEMPLAR_ID_MAX = 128 - len("session_id")


@dataclass(frozen=True, slots=True)
class SessionExemplar:
    """A recent session of one series: its id, the observed value and when it ended."""

    session_id: str
    value: float
    timestamp: float


class Exemplars:
    """Per series, the newest session counted in it (in memory only: a restart forgets them)."""

    def __init__(self) -> None:
        self.finished: dict[tuple[str, str, str], SessionExemplar] = {}
        self.duration: dict[tuple[str, str, int], SessionExemplar] = {}

    def note(self, builder: TotalsBuilder) -> None:
        """Keep the exemplars of a committed cycle's sessions."""
        exemplar = builder.exemplar
        for key, record in builder.finished_exemplars.items():
            self.finished[key] = exemplar(record, 1.0)
        for bucket, record in builder.duration_exemplars.items():
            self.duration[bucket] = exemplar(record, record.duration_seconds or 0.0)


class _SeriesOf:
    """The series one (workflow, status, outcome) of a cycle is counted in, each family's decided as
    it is first needed: a label set takes a place in a budget only once it has a series there."""

    __slots__ = ("finished", "capped", "failed", "duration", "tokens", "cost")

    def __init__(self, finished: tuple[str, str, str], capped: tuple[str, str], failed: bool) -> None:
        self.finished = finished
        #: (workflow, outcome) through the label caps only: what the other families' budgets start from.
        self.capped = capped
        self.failed = failed
        self.duration: tuple[str, str] | None = None
        #: token type -> series; model as read -> series
        self.tokens: dict[str, tuple[str, str]] = {}
        self.cost: dict[str | None, tuple[str, str]] = {}


class TotalsBuilder:
    """Turns finished records into the increment of one source cycle, and notes for each series a
    recent session (an exemplar) and each workflow's name.

    ``series``: the source's totals so far, whose label sets each family's budget of
    ``max_series`` counts (None: no budget)."""

    def __init__(
        self,
        buckets: tuple[float, ...],
        status_label: LabelLimiter,
        model_label: LabelLimiter,
        workflow_label: LabelLimiter | None = None,
        now: float = 0.0,
        max_series: int | None = None,
        series: SourceTotals | None = None,
    ) -> None:
        self.buckets = buckets
        self.status_label = status_label
        self.model_label = model_label
        self.workflow_label = workflow_label or LabelLimiter(0, ("",))
        self.now = now
        self.totals = totals = SourceTotals(bounds=list(buckets))
        self.max_series = max_series
        series = series if series is not None else SourceTotals()

        self._finished = SeriesBudget(FINISHED, max_series, series.finished, series.folded, totals.folded)
        self._duration = SeriesBudget(DURATION, max_series, series.duration_buckets, series.folded, totals.folded)
        self._tokens = SeriesBudget(TOKENS, max_series, series.tokens, series.folded, totals.folded)
        self._cost = SeriesBudget(COST, max_series, series.cost, series.folded, totals.folded)
        #: (workflow, status, outcome) -> the newest session counted in that series
        self.finished_exemplars: dict[tuple[str, str, str], SessionRecord] = {}
        #: (workflow, outcome, bucket index) -> the newest session observed in that bucket
        self.duration_exemplars: dict[tuple[str, str, int], SessionRecord] = {}
        #: The finished records of this cycle that ended in error or timeout, for the landing page.
        self.failures: list[SessionRecord] = []
        #: (workflow, status, outcome) -> the series its sessions are counted in this cycle
        self._keys: dict[tuple[str, str, Outcome], _SeriesOf] = {}
        self._bounds = len(buckets) + 1

    def add(self, record: SessionRecord) -> None:
        """Count one finished record (the hot path of ingestion: kept to plain dict operations)."""
        outcome = record.outcome
        assert outcome is not None
        key = (record.workflow, record.status, outcome)
        labels = self._keys.get(key)
        if labels is None:
            labels = self._label(key)
        label_key = labels.finished
        workflow = label_key[0]
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
            series = labels.duration
            if series is None:
                series = labels.duration = self._duration(labels.capped)
            counts = totals.duration_buckets.get(series)
            if counts is None:
                counts = totals.duration_buckets[series] = [0] * self._bounds
            bucket = bisect.bisect_left(self.buckets, duration)
            counts[bucket] += 1
            sums = totals.duration_sum
            sums[series] = sums.get(series, 0.0) + duration
            if exemplary:
                self.duration_exemplars[(series[0], series[1], bucket)] = record
        if record.warnings:
            totals.warnings[workflow] = totals.warnings.get(workflow, 0.0) + record.warnings
        if labels.failed:
            self.failures.append(record)
            totals.errors[workflow] = totals.errors.get(workflow, 0) + 1
        elif record.error_text and outcome is not Outcome.CANCELLED:  # SessionRecord.counts_as_error, inlined
            totals.errors[workflow] = totals.errors.get(workflow, 0) + 1
        if record.tokens:
            tokens = totals.tokens
            token_keys = labels.tokens
            for kind, value in record.tokens.items():
                tokens_key = token_keys.get(kind)
                if tokens_key is None:
                    tokens_key = token_keys[kind] = self._tokens((labels.capped[0], kind))
                tokens[tokens_key] = tokens.get(tokens_key, 0.0) + value
        if record.cost_usd is not None:
            cost_key = labels.cost.get(record.model)
            if cost_key is None:
                cost_key = labels.cost[record.model] = self._cost((labels.capped[0], self.model_label(record.model or "unknown")))
            totals.cost[cost_key] = totals.cost.get(cost_key, 0.0) + record.cost_usd

    def _label(self, key: tuple[str, str, Outcome]) -> _SeriesOf:
        workflow, status, outcome = key
        label = _OUTCOME_LABEL[outcome]
        workflow_label = self.workflow_label(workflow)
        finished = self._finished((workflow_label, self.status_label(status), label))
        labels = self._keys[key] = _SeriesOf(finished, (workflow_label, label), outcome in (Outcome.ERROR, Outcome.TIMEOUT))
        return labels

    def exemplar(self, record: SessionRecord, value: float) -> SessionExemplar:
        """The exemplar of one counted record: ``value`` at its end (never after this cycle)."""
        ended = record.finished_at
        return SessionExemplar(record.session_id, value, ended if ended is not None and ended <= self.now else self.now)

    def name_workflows(self, records: Iterable[SessionRecord], known: dict[str, str]) -> None:
        """Note the display name of each workflow that is new or renamed (``known``: the names so far),
        for at most the series budget's number of workflows."""
        room = (sys.maxsize if self.max_series is None else self.max_series) - len(known)
        names = self.totals.names
        for record in records:
            if record.workflow and record.workflow_name:
                workflow = self.workflow_label(record.workflow)
                name = record.workflow_name[:MAX_LABEL_LENGTH]
                if workflow == OTHER or known.get(workflow) == name:
                    continue
                if workflow not in known and workflow not in names:
                    if room <= 0:
                        continue
                    room -= 1
                names[workflow] = name


class SourceCounter:
    """What counting keeps of one source across its cycles, besides its state: the caps of its
    upstream labels, which know every value the state holds (so that after a restart the same values
    keep their place), and its series budgets; the active gauge as last folded, and the exemplars
    (in memory only). It makes each cycle's TotalsBuilder, and the SourceView rendered."""

    def __init__(self, state: SourceState, buckets: tuple[float, ...], max_label_values: int, max_series: int | None) -> None:
        self.state = state
        self.buckets = buckets
        self.max_series = max_series
        self.status_label, self.model_label, self.workflow_label = label_limiters(
            state.totals, state.pending.values(), max_label_values
        )
        #: The active gauge: (workflow, status) -> sessions active, through the caps and the budget.
        self.active: dict[tuple[str, str], int] = {}
        self.exemplars = Exemplars()

    def builder(self, now: float = 0.0) -> TotalsBuilder:
        return TotalsBuilder(
            self.buckets, self.status_label, self.model_label, self.workflow_label, now, self.max_series, self.state.totals
        )

    def fold_active(self) -> dict[tuple[str, str], list[str]]:
        """Fold the active gauge again from the pending sessions (``count/budget.py: fold_active``);
        the values it newly folds."""
        self.active, folded = fold_active(self.state, self.status_label, self.workflow_label, self.max_series)
        return folded

    def view(self, provider: str, figures: frozenset[str]) -> SourceView:
        """What the renderer draws for this source, handed to it at scrape time."""
        return SourceView(
            provider=provider,
            totals=self.state.totals,
            active=self.active,
            figures=figures,
            finished_exemplars=self.exemplars.finished,
            duration_exemplars=self.exemplars.duration,
        )


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
