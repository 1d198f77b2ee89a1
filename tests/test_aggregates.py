"""The aggregates: the label cap, the increments of one cycle, and what the renderer draws."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from exporter.aggregates import LabelLimiter, SessionMetrics, SourceView, TotalsBuilder
from exporter.model import Outcome, Phase, SessionRecord
from exporter.state import SourceTotals


def record(sid: str, status: str = "completed", outcome: Outcome = Outcome.SUCCESS, **extra) -> SessionRecord:
    return SessionRecord(session_id=sid, status=status, phase=Phase.FINISHED, key_time=1.0, outcome=outcome, **extra)


def test_label_values_are_capped_and_truncated():
    limit = LabelLimiter(3)
    assert [limit(v) for v in ("a", "b", "c", "d", "a", "e")] == ["a", "b", "c", "other", "a", "other"]
    assert LabelLimiter(5)("x" * 500) == "x" * 64


def test_one_cycles_increments_follow_the_one_definition_of_an_error():
    builder = TotalsBuilder((1.0, 10.0), LabelLimiter(10), LabelLimiter(10))
    builder.add(record("a", duration_seconds=0.5, tokens={"input": 3.0}, cost_usd=0.25, model="m"))
    builder.add(record("b", "failed", Outcome.ERROR, duration_seconds=5.0))
    builder.add(record("c", "stopped", Outcome.CANCELLED, error_text=True))  # a stop reason: no error
    builder.add(record("d", "succeeded", Outcome.SUCCESS, error_text=True))  # success with an error text
    totals = builder.totals
    assert totals.finished == {("completed", "success"): 1, ("failed", "error"): 1, ("stopped", "cancelled"): 1,
                               ("succeeded", "success"): 1}
    assert totals.errors == 2
    assert totals.duration_buckets == {"success": [1, 0, 0], "error": [0, 1, 0]}
    assert totals.tokens == {"input": 3.0} and totals.cost == {"m": 0.25}


def test_the_renderer_draws_only_the_figures_a_provider_supplies():
    totals = SourceTotals(finished={("ended", "success"): 2}, bounds=[1.0])
    views = {"k": SourceView("kapso", totals, {"handoff": 1}, figures=frozenset()),
             "w": SourceView("whatabot", SourceTotals(warnings=3.0, bounds=[1.0]), figures=frozenset({"warnings"}))}
    registry = CollectorRegistry()
    registry.register(SessionMetrics((1.0,), lambda: views))
    assert registry.get_sample_value("agent_sessions_finished_total",
                                     {"source": "k", "provider": "kapso", "status": "ended", "outcome": "success"}) == 2
    assert registry.get_sample_value("agent_sessions_active",
                                     {"source": "k", "provider": "kapso", "status": "handoff"}) == 1
    assert registry.get_sample_value("agent_session_warnings_total", {"source": "k", "provider": "kapso"}) is None
    assert registry.get_sample_value("agent_session_warnings_total", {"source": "w", "provider": "whatabot"}) == 3


def test_totals_round_trip_through_their_derived_json():
    totals = SourceTotals(finished={("a", "success"): 2}, duration_buckets={"success": [1, 1]},
                          duration_sum={"success": 3.5}, bounds=[1.0], warnings=2.0, errors=1,
                          tokens={"input": 4.0}, cost={"m": 0.5})
    assert SourceTotals.from_json(totals.to_json()) == totals
    assert SourceTotals.from_json(SourceTotals().to_json()) == SourceTotals()
