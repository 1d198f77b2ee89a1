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
from typing import Collection, Generic, Iterable, Mapping, TypeVar, cast

from agent_session_exporter.count.state import PendingSession, SourceTotals
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


def label_limiters(totals: SourceTotals, pending: Iterable[PendingSession],
                   max_values: int) -> tuple[LabelLimiter, LabelLimiter, LabelLimiter]:
    """The caps of the status, model and workflow labels, knowing every value the state holds (in a
    series, a series of the active gauge, or folded past a budget), so that after a restart the
    same values keep their place."""
    folded = totals.folded

    def folded_values(label: str) -> set[str]:
        return {value for (_, folded_label), values in folded.items() if folded_label == label for value in values}
    statuses = {s for _, s, _ in totals.finished} | {s for _, s in totals.active_series} | folded_values("status")
    models = {model for _, model in totals.cost} | folded_values("model")
    workflows = (totals.workflows() | {w for w, _ in totals.active_series} | {p.workflow for p in pending}
                 | folded_values("workflow"))
    return (LabelLimiter(max_values, statuses), LabelLimiter(max_values, models),
            LabelLimiter(max_values, workflows))


#: The upstream labels a family folds into ``other`` once its series budget is spent, in this order.
FOLD_ORDER = ("workflow", "model", "status")
#: Of a family's budget, this share (one part in ten) is kept for the label sets with only some
#: labels folded, where a family has more than one to fold: past the budget sums by status (or
#: model) stay exact while that room lasts.
_PARTLY_FOLDED_SHARE = 10


@dataclass(frozen=True)
class Family:
    """A session metric family as its series budget sees it."""

    name: str
    #: The parts of its label sets (the keys of its dict in SourceTotals), in order.
    labels: tuple[str, ...]
    #: How many label sets can be fully folded (one per value of the labels that never fold:
    #: outcome, token type): room is kept for them.
    fully_folded: int

    @property
    def folds(self) -> tuple[str, ...]:
        """The labels it folds, in FOLD_ORDER."""
        return tuple(label for label in FOLD_ORDER if label in self.labels)


FINISHED = Family("finished", ("workflow", "status", "outcome"), len(Outcome))
ACTIVE = Family("active", ("workflow", "status"), 1)
DURATION = Family("duration", ("workflow", "outcome"), len(Outcome))
#: The token types the providers give: input, output, cache_read, cache_creation, total (were one
#: to give more, the budget could be passed by as many fully folded label sets).
TOKENS = Family("tokens", ("workflow", "token_type"), 5)
COST = Family("cost", ("workflow", "model"), 1)
#: Every family with a series budget. ``agent_session_errors`` and ``agent_session_warnings`` count a
#: session under the workflow of its ``finished`` series (so their ratio to it by workflow holds);
#: ``agent_session_workflow_info`` names at most the budget's number of workflows.
FAMILIES = (FINISHED, ACTIVE, DURATION, TOKENS, COST)


#: A label set: the key of a family's dict in SourceTotals.
Key = TypeVar("Key", bound=tuple[str, ...])


class SeriesBudget(Generic[Key]):
    """Keeps one family of one source within ``limit`` series (issue #24: the label caps alone let
    their product through).

    A label set that is already a series stays one: counters never move or reset. A new one gets a
    series of its own while there is room; past that it folds its labels into ``other`` in
    FOLD_ORDER, onto the first label set that is a series or still has room. Room is kept for the
    partly folded label sets (a tenth) and for the fully folded ones, so the family never passes
    ``limit`` (but for series a state written before the budget holds). The decision is a function of
    the series so far, so a restart, which restores them, decides alike.
    """

    def __init__(self, family: Family, limit: int | None, series: Collection[Key],
                 folded: Mapping[tuple[str, str], list[str]], folded_now: dict[tuple[str, str], list[str]]) -> None:
        """``series``: the family's series so far (read only); ``folded``: the values folded so far;
        ``folded_now``: where the values this budget newly folds are noted."""
        self.family = family
        self.series = series
        #: The label sets given a series here (the caller keeps them once committed).
        self.new: set[Key] = set()
        self.folded = folded
        self.folded_now = folded_now
        self._folds = tuple((family.labels.index(label), label) for label in family.folds)
        limit = sys.maxsize if limit is None else limit
        partly = limit // _PARTLY_FOLDED_SHARE if len(self._folds) > 1 else 0
        self._own_limit = limit - family.fully_folded - partly
        self._partly_limit = limit - family.fully_folded

    def __call__(self, key: Key) -> Key:
        """The label set ``key`` is counted in."""
        if key in self.series or key in self.new:
            return key
        return self._place(key)

    def _place(self, key: Key) -> Key:
        size = len(self.series) + len(self.new)
        if size < self._limit_for(key):
            self.new.add(key)
            return key
        parts = list(key)
        for index, label in self._folds:
            value = parts[index]
            if value == OTHER:
                continue
            parts[index] = OTHER
            self._note(label, value)
            key = cast(Key, tuple(parts))
            if key in self.series or key in self.new:
                return key
            if size < self._limit_for(key):
                break
        self.new.add(key)  # room is kept for every fully folded label set
        return key

    def _limit_for(self, key: tuple[str, ...]) -> float:
        others = sum(key[index] == OTHER for index, _ in self._folds)
        if others == len(self._folds):
            return float("inf")
        return self._partly_limit if others else self._own_limit

    def _note(self, label: str, value: str) -> None:
        where = (self.family.name, label)
        if value not in self.folded.get(where, ()):
            now = self.folded_now.setdefault(where, [])
            if value not in now:
                now.append(value)


def fold_counts(counts: Mapping[Key, int], budget: SeriesBudget[Key]) -> dict[Key, int]:
    """``counts`` by the series ``budget`` gives them (the active gauge). New label sets are placed in
    sorted order: the same counts and series fold alike, in whatever order the pending sessions come
    (after a restart they load sorted by id)."""
    folded: dict[Key, int] = {}
    for key in sorted(counts):
        series = budget(key)
        folded[series] = folded.get(series, 0) + counts[key]
    return folded


#: OpenMetrics allows 128 characters of exemplar label names and values together.
_EXEMPLAR_ID_MAX = 128 - len("session_id")


@dataclass(frozen=True, slots=True)
class SessionExemplar:
    """A recent session of one series: its id, the observed value and when it ended."""

    session_id: str
    value: float
    timestamp: float


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

    def __init__(self, buckets: tuple[float, ...], status_label: LabelLimiter, model_label: LabelLimiter,
                 workflow_label: LabelLimiter | None = None, now: float = 0.0, max_series: int | None = None,
                 series: SourceTotals | None = None) -> None:
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
                cost_key = labels.cost[record.model] = self._cost(
                    (labels.capped[0], self.model_label(record.model or "unknown")))
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
        return SessionExemplar(record.session_id, value,
                               ended if ended is not None and ended <= self.now else self.now)

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


