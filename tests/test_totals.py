"""The aggregates: the label cap, the increments of one cycle, and what the renderer draws."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from agent_session_exporter.count.state import SourceTotals
from agent_session_exporter.count.totals import LabelLimiter, SourceView, TotalsBuilder
from agent_session_exporter.model import Outcome, Phase, SessionRecord
from agent_session_exporter.serve.session_metrics import SessionMetrics


def record(sid: str, status: str = "completed", outcome: Outcome = Outcome.SUCCESS, **extra) -> SessionRecord:
    return SessionRecord(session_id=sid, status=status, phase=Phase.FINISHED, key_time=1.0, outcome=outcome, **extra)


def test_label_values_are_capped_and_truncated():
    limit = LabelLimiter(3)
    assert [limit(v) for v in ("a", "b", "c", "d", "a", "e")] == ["a", "b", "c", "other", "a", "other"]
    assert LabelLimiter(5)("x" * 500) == "x" * 128
    # "other" is where the rest go, not a value of its own: known or seen, it takes no place.
    limit = LabelLimiter(2, {"other", "a"})
    assert [limit(v) for v in ("other", "b", "c")] == ["other", "b", "other"]


def test_one_cycles_increments_follow_the_one_definition_of_an_error():
    builder = TotalsBuilder((1.0, 10.0), LabelLimiter(10), LabelLimiter(10))
    builder.add(record("a", duration_seconds=0.5, tokens={"input": 3.0}, cost_usd=0.25, model="m"))
    builder.add(record("b", "failed", Outcome.ERROR, duration_seconds=5.0))
    builder.add(record("c", "stopped", Outcome.CANCELLED, error_text=True))  # a stop reason: no error
    builder.add(record("d", "succeeded", Outcome.SUCCESS, error_text=True))  # success with an error text
    totals = builder.totals
    assert totals.finished == {("", "completed", "success"): 1, ("", "failed", "error"): 1,
                               ("", "stopped", "cancelled"): 1, ("", "succeeded", "success"): 1}
    assert totals.errors == {"": 2}
    assert totals.duration_buckets == {("", "success"): [1, 0, 0], ("", "error"): [0, 1, 0]}
    assert totals.tokens == {("", "input"): 3.0} and totals.cost == {("", "m"): 0.25}
    assert [r.session_id for r in builder.failures] == ["b"]


def test_workflow_values_go_through_the_label_cap():
    builder = TotalsBuilder((1.0,), LabelLimiter(10), LabelLimiter(10), LabelLimiter(2))
    for n, workflow in enumerate(("wf-a", "wf-b", "wf-c", "wf-d", "wf-a")):
        builder.add(record(f"s{n}", workflow=workflow, duration_seconds=0.5))
    assert builder.totals.finished == {("wf-a", "completed", "success"): 2, ("wf-b", "completed", "success"): 1,
                                       ("other", "completed", "success"): 2}
    assert set(builder.totals.duration_buckets) == {("wf-a", "success"), ("wf-b", "success"), ("other", "success")}


def test_the_renderer_draws_only_the_figures_a_provider_supplies():
    totals = SourceTotals(finished={("wf", "ended", "success"): 2}, bounds=[1.0], names={"wf": "Support bot"})
    views = {"k": SourceView("kapso", totals, {("wf", "handoff"): 1}, figures=frozenset()),
             "w": SourceView("whatabot", SourceTotals(warnings={"": 3.0}, bounds=[1.0]), figures=frozenset({"warnings"}))}
    registry = CollectorRegistry()
    registry.register(SessionMetrics((1.0,), lambda: views))
    k = {"source": "k", "provider": "kapso", "workflow": "wf"}
    assert registry.get_sample_value("agent_sessions_finished_total", k | {"status": "ended", "outcome": "success"}) == 2
    assert registry.get_sample_value("agent_sessions_active", k | {"status": "handoff"}) == 1
    assert registry.get_sample_value("agent_session_warnings_total", k) is None
    assert registry.get_sample_value("agent_session_errors_total", k) == 0
    assert registry.get_sample_value("agent_session_warnings_total",
                                     {"source": "w", "provider": "whatabot", "workflow": ""}) == 3
    assert registry.get_sample_value("agent_session_workflow_info",
                                     {"source": "k", "workflow": "wf", "workflow_name": "Support bot"}) == 1


def test_exemplars_are_written_in_openmetrics_only_and_parse_back():
    from prometheus_client import generate_latest
    from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
    from prometheus_client.openmetrics.parser import text_string_to_metric_families

    builder = TotalsBuilder((1.0, 10.0), LabelLimiter(10), LabelLimiter(10), LabelLimiter(10), now=2000.0)
    builder.add(record("run-1", "failed", Outcome.ERROR, workflow="wf", duration_seconds=5.0, finished_at=1990.0))
    builder.add(record("x" * 200, "failed", Outcome.ERROR, workflow="wf", duration_seconds=0.5))  # too long an id
    view = SourceView("kapso", builder.totals,
                      finished_exemplars={k: builder.exemplar(r, 1.0) for k, r in builder.finished_exemplars.items()},
                      duration_exemplars={k: builder.exemplar(r, r.duration_seconds)
                                          for k, r in builder.duration_exemplars.items()})
    registry = CollectorRegistry()
    registry.register(SessionMetrics((1.0, 10.0), lambda: {"k": view}))
    assert b"session_id" not in generate_latest(registry)
    samples = {(s.name, s.labels.get("le")): s for family in text_string_to_metric_families(
        generate_openmetrics(registry).decode()) for s in family.samples}
    finished = samples[("agent_sessions_finished_total", None)]
    assert finished.value == 2 and finished.exemplar is not None
    assert finished.exemplar.labels == {"session_id": "run-1"} and float(finished.exemplar.timestamp) == 1990.0
    bucket = samples[("agent_session_duration_seconds_bucket", "10.0")]
    assert bucket.exemplar.labels == {"session_id": "run-1"} and bucket.exemplar.value == 5.0
    assert samples[("agent_session_duration_seconds_bucket", "1.0")].exemplar is None  # the long id has none



