"""The caps of the labels whose values come from upstream (status, model, workflow): each value cut
to ``MAX_LABEL_LENGTH`` characters, and at most ``max_label_values`` distinct values per label, the
rest counted as ``other``."""

from __future__ import annotations

from typing import Iterable

from agent_session_exporter.count.state import PendingSession, SourceTotals

#: Label values from upstream are cut to this many characters (ids never are).
MAX_LABEL_LENGTH = 128
OTHER = "other"


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


def label_limiters(
    totals: SourceTotals, pending: Iterable[PendingSession], max_values: int
) -> tuple[LabelLimiter, LabelLimiter, LabelLimiter]:
    """The caps of the status, model and workflow labels, knowing every value the state holds (in a
    series, a series of the active gauge, or folded past a budget), so that after a restart the
    same values keep their place."""
    folded = totals.folded

    def folded_values(label: str) -> set[str]:
        return {value for (_, folded_label), values in folded.items() if folded_label == label for value in values}

    statuses = {s for _, s, _ in totals.finished} | {s for _, s in totals.active_series} | folded_values("status")
    models = {model for _, model in totals.cost} | folded_values("model")
    workflows = (
        totals.workflows() | {w for w, _ in totals.active_series} | {p.workflow for p in pending} | folded_values("workflow")
    )
    return (LabelLimiter(max_values, statuses), LabelLimiter(max_values, models), LabelLimiter(max_values, workflows))
