"""The series budget of each session metric family (``max_series_per_family``): past it, new label
sets fold their upstream labels into ``other``, so no family of one source passes its limit."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Collection, Generic, Mapping, TypeVar, cast

from agent_session_exporter.count.labels import OTHER, LabelLimiter
from agent_session_exporter.count.state import SourceState, SourceTotals
from agent_session_exporter.model import Outcome

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

    def __init__(
        self,
        family: Family,
        limit: int | None,
        series: Collection[Key],
        folded: Mapping[tuple[str, str], list[str]],
        folded_now: dict[tuple[str, str], list[str]],
    ) -> None:
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


def fold_active(
    state: SourceState, status_label: LabelLimiter, workflow_label: LabelLimiter, max_series: int | None
) -> tuple[dict[tuple[str, str], int], dict[tuple[str, str], list[str]]]:
    """The active gauge: pending sessions by (workflow, status), through the label caps and the
    gauge's series budget; and the values it newly folds. The series it adds and the values it folds
    join the state here, after the commit: they follow from the pending sessions and the series
    before, both committed, so a restart before the next commit (which writes them) makes the same
    of them."""
    totals = state.totals
    folded: dict[tuple[str, str], list[str]] = {}
    budget = SeriesBudget(ACTIVE, max_series, totals.active_series, totals.folded, folded)
    active = fold_counts(state.active_by_status(status_label, workflow_label), budget)
    totals.add(SourceTotals(active_series=budget.new, folded=folded))
    return active, folded
