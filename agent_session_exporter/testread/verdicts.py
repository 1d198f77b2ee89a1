"""What a test read would count: its records planned as a first cycle would plan them, against an
empty state (``count/cycle.py: plan_cycle``, the counting rules themselves), and each record's
verdict: counted now, pending, or skipped and why."""

from __future__ import annotations

import enum
from collections import Counter
from dataclasses import dataclass, field

from agent_session_exporter.count.cycle import CycleSettings, plan_cycle
from agent_session_exporter.count.labels import label_limiters
from agent_session_exporter.count.state import SourceState, SourceTotals
from agent_session_exporter.count.totals import TotalsBuilder
from agent_session_exporter.model import Phase, PollResult, SessionRecord
from agent_session_exporter.read.source import SourceBase


class Verdict(str, enum.Enum):
    NEW_FINAL = "new_final"
    PENDING_ACTIVE = "pending_active"
    PENDING_SETTLING = "pending_settling"
    REPEATED = "repeated"
    OUTSIDE_WINDOW = "outside_window"
    FUTURE_TIMESTAMP = "future_timestamp"
    GIVEN_UP = "given_up"
    NOT_KEPT = "not_kept"


#: How each verdict reads in the text form.
VERDICT_TEXT = {
    Verdict.NEW_FINAL: "counted (new final)",
    Verdict.PENDING_ACTIVE: "pending (active)",
    Verdict.PENDING_SETTLING: "pending (settling)",
    Verdict.REPEATED: "skipped (repeated)",
    Verdict.OUTSIDE_WINDOW: "skipped (older than the window)",
    Verdict.FUTURE_TIMESTAMP: "refused (key time in the future)",
    Verdict.GIVEN_UP: "skipped (older than max_pending_age)",
    Verdict.NOT_KEPT: "skipped (not kept by the provider)",
}
PENDING = (Verdict.PENDING_ACTIVE, Verdict.PENDING_SETTLING)
#: The verdicts of records skipped, each with its reason as the summary says it.
SKIPPED = {
    Verdict.REPEATED: "repeated",
    Verdict.OUTSIDE_WINDOW: "older than the window",
    Verdict.GIVEN_UP: "older than max_pending_age",
    Verdict.NOT_KEPT: "not kept by the provider",
}


class _Noting(TotalsBuilder):
    """The totals builder, noting which record objects it counted."""

    counted: set[int]

    def add(self, record: SessionRecord) -> None:
        self.counted.add(id(record))
        super().add(record)


@dataclass
class Judgement:
    #: id(record) -> its verdict
    verdicts: dict[int, Verdict] = field(default_factory=dict)
    #: What the cycle would add to the source's counters.
    increments: SourceTotals = field(default_factory=SourceTotals)
    #: Raw statuses the provider does not know.
    unknown_statuses: Counter[str] = field(default_factory=Counter)

    def tally(self) -> Counter[Verdict]:
        return Counter(self.verdicts.values())


def judge(
    records: list[SessionRecord], kept: set[int] | None, source: SourceBase, buckets: tuple[float, ...], now: float, floor: float
) -> Judgement:
    """Each record's verdict in a first cycle whose window starts at ``floor``. ``kept``: the ids of
    the records the provider's read handed on (None: all; a read ended by a limit hands on none)."""
    builder = _Noting(buckets, *label_limiters(SourceTotals(), (), source.max_label_values), now, source.max_series_per_family)
    builder.counted = set()
    taken = [r for r in records if kept is None or id(r) in kept]
    settings = CycleSettings(overlap=source.overlap, settle_after=source.settle_after, max_pending_age=source.max_pending_age)
    plan = plan_cycle(SourceState(), PollResult(records=taken), now, floor, floor, settings, builder)
    future = {sid for reason, sid in plan.invalid if reason == "future_timestamp"}
    given_up = {sid for sid, _ in plan.dropped}
    counted_ids = {r.session_id for r in taken if id(r) in builder.counted}
    judgement = Judgement(increments=builder.totals, unknown_statuses=Counter(plan.unknown_statuses))
    for record in records:
        sid = record.session_id
        if kept is not None and id(record) not in kept:
            verdict = Verdict.NOT_KEPT
        elif id(record) in builder.counted:
            verdict = Verdict.NEW_FINAL
        elif sid in counted_ids:
            verdict = Verdict.REPEATED
        elif sid in plan.delta.pending_upsert:
            verdict = Verdict.PENDING_SETTLING if record.phase is Phase.SETTLING else Verdict.PENDING_ACTIVE
        elif sid[:128] in future:
            verdict = Verdict.FUTURE_TIMESTAMP
        elif sid in given_up:
            verdict = Verdict.GIVEN_UP
        elif record.key_time < floor:
            verdict = Verdict.OUTSIDE_WINDOW
        else:
            verdict = Verdict.REPEATED  # another row of the same session was taken (one row per session)
        judgement.verdicts[id(record)] = verdict
    return judgement
