"""The ground truth of a Vapi simulation: the exact totals of the calls ended by an instant, by the
outcome their ``endedReason`` gives (``vapi_reasons.outcome_of``), and the calls still active."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from .vapi_calls import CallPlan
from .vapi_reasons import OUTCOMES, outcome_of


@dataclass
class OutcomeTotals:
    count: int = 0
    #: Calls with both ``startedAt`` and ``endedAt`` (a call that never connected has no duration).
    duration_count: int = 0
    duration_ms: int = 0
    durations: list[float] = field(default_factory=list)
    tokens: Counter[str] = field(default_factory=Counter)
    cost_micros: int = 0

    @property
    def duration_sum(self) -> float:
        return self.duration_ms / 1000

    @property
    def cost(self) -> float:
        return self.cost_micros / 1e6


@dataclass
class Truth:
    """What the exporter must have counted once it has read every call ended by ``now``."""

    now: float
    by_outcome: dict[str, OutcomeTotals] = field(default_factory=lambda: {o: OutcomeTotals() for o in OUTCOMES})
    by_reason: Counter[str] = field(default_factory=Counter)
    #: (assistantId, "" for a transient assistant; outcome) -> calls.
    by_assistant: Counter[tuple[str, str]] = field(default_factory=Counter)
    #: (assistantId or ""; model of a transient assistant or "") -> cost in micro-dollars.
    cost_by_model_micros: Counter[tuple[str, str]] = field(default_factory=Counter)
    #: Calls not ended at ``now``, by status.
    active: Counter[str] = field(default_factory=Counter)

    @property
    def ended(self) -> int:
        return sum(t.count for t in self.by_outcome.values())

    @property
    def errors(self) -> int:
        """Ended calls whose outcome is error or timeout (the project's ``counts_as_error``)."""
        return self.by_outcome["error"].count + self.by_outcome["timeout"].count

    def add(self, plan: CallPlan, now_ms: int) -> None:
        ended = plan.ended_ms(now_ms)
        if ended is None:
            self.active[plan.status_at(now_ms)] += 1
            return
        outcome = outcome_of(plan.reason or "")
        totals = self.by_outcome.setdefault(outcome, OutcomeTotals())
        totals.count += 1
        started = plan.started_ms(now_ms)
        if started is not None:
            totals.duration_count += 1
            totals.duration_ms += ended - started
            totals.durations.append((ended - started) / 1000)
        usage = plan.usage()
        totals.tokens.update(usage.tokens())
        totals.cost_micros += usage.total
        self.by_reason[plan.reason or ""] += 1
        self.by_assistant[(plan.assistant_id or "", outcome)] += 1
        self.cost_by_model_micros[(plan.assistant_id or "", plan.model or "")] += usage.total
