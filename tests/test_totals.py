"""The aggregates: the label cap, the increments of one cycle, and what the renderer draws."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from agent_session_exporter.count.budget import COST, FINISHED, SeriesBudget
from agent_session_exporter.count.labels import LabelLimiter, label_limiters
from agent_session_exporter.count.state import PendingSession, SourceTotals
from agent_session_exporter.count.totals import SourceView, TotalsBuilder
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


def test_past_the_budget_workflow_folds_first_then_model_or_status():
    """Cost (workflow, model) with 20 series: 17 label sets of their own, then a tenth of the budget
    (2) for label sets with only the workflow folded, then the fully folded one (room is kept for it);
    finished (workflow, status, outcome) alike, with room for each outcome's fully folded label set.
    A label set that is a series always stays what it is."""
    folded: dict[tuple[str, str], list[str]] = {}
    cost = SeriesBudget(COST, 20, {}, {}, folded)
    assert [cost((f"wf-{n}", f"m-{n}")) for n in range(17)] == [(f"wf-{n}", f"m-{n}") for n in range(17)]
    assert cost(("wf-new", "m-0")) == ("other", "m-0")
    assert cost(("wf-new", "m-1")) == ("other", "m-1")
    assert cost(("wf-new", "m-2")) == ("other", "other")
    assert cost(("wf-late", "m-0")) == ("other", "m-0") and cost(("wf-3", "m-3")) == ("wf-3", "m-3")
    assert cost(("wf-late", "m-9")) == ("other", "other")
    assert len(cost.new) == 20
    assert folded == {("cost", "workflow"): ["wf-new", "wf-late"], ("cost", "model"): ["m-2", "m-9"]}

    finished = SeriesBudget(FINISHED, 20, {}, {}, folded)
    for n in range(13):
        assert finished((f"wf-{n}", "done", "success")) == (f"wf-{n}", "done", "success")
    assert finished(("wf-new", "done", "success")) == ("other", "done", "success")
    assert finished(("wf-new", "failed", "error")) == ("other", "failed", "error")
    for outcome in ("success", "error", "timeout", "cancelled", "unknown"):
        assert finished(("wf-new", "odd", outcome)) == ("other", "other", outcome)
    assert finished(("wf-late", "failed", "error")) == ("other", "failed", "error")
    assert len(finished.new) == 20
    assert folded[("finished", "status")] == ["odd"]


def test_no_family_passes_its_budget_and_no_session_or_figure_is_lost():
    builder = TotalsBuilder((1.0, 10.0), LabelLimiter(100), LabelLimiter(100), LabelLimiter(100), max_series=10)
    records = [
        record(
            f"s{n}",
            f"status-{n % 7}",
            (Outcome.SUCCESS, Outcome.ERROR)[n % 2],
            workflow=f"wf-{n % 13}",
            duration_seconds=float(n % 20),
            tokens={"input": 1.0, "output": 2.0},
            cost_usd=0.5,
            model=f"m-{n % 5}",
            warnings=1.0,
        )
        for n in range(500)
    ]
    for r in records:
        builder.add(r)
    totals = builder.totals
    for family in ("finished", "duration_buckets", "tokens", "cost"):
        assert len(getattr(totals, family)) <= 10, family
    assert len(totals.errors) <= len({w for w, _, _ in totals.finished})
    assert sum(totals.finished.values()) == 500
    assert sum(sum(counts) for counts in totals.duration_buckets.values()) == 500
    assert sum(totals.duration_sum.values()) == sum(r.duration_seconds for r in records)
    assert sum(totals.tokens.values()) == 1500 and sum(totals.cost.values()) == 250
    assert sum(totals.errors.values()) == 250 and sum(totals.warnings.values()) == 500
    # Errors follow each session's finished series: by workflow, never more than it finished.
    for workflow, errors in totals.errors.items():
        assert errors <= sum(v for (w, _, _), v in totals.finished.items() if w == workflow)


def test_series_restored_past_the_budget_keep_counting_and_new_ones_fold():
    """A state written before the budget may hold more series than it allows: they stay."""
    restored = SourceTotals(finished={(f"wf-{n}", "done", "success"): 1 for n in range(30)})
    builder = TotalsBuilder((1.0,), LabelLimiter(100), LabelLimiter(100), LabelLimiter(100), max_series=10, series=restored)
    builder.add(record("a", "done", workflow="wf-29"))
    builder.add(record("b", "done", workflow="wf-30"))
    assert builder.totals.finished == {("wf-29", "done", "success"): 1, ("other", "other", "success"): 1}


def test_workflow_names_stay_within_the_budget_and_renames_still_apply():
    builder = TotalsBuilder((1.0,), LabelLimiter(100), LabelLimiter(100), LabelLimiter(100), max_series=10)
    known = {f"wf-{n}": f"Name {n}" for n in range(9)}
    builder.name_workflows([record(f"s{n}", workflow=f"wf-{n}", workflow_name=f"New {n}") for n in range(12)], known)
    assert builder.totals.names == {**{f"wf-{n}": f"New {n}" for n in range(9)}, "wf-9": "New 9"}


def test_the_label_caps_know_every_value_the_state_holds():
    """After a restart each cap knows the values it let through before: in a series, in a series of
    the active gauge, or folded past a budget (which appears in no series)."""
    totals = SourceTotals(
        finished={("wf-a", "done", "success"): 1, ("other", "other", "success"): 1},
        cost={("wf-a", "m-a"): 1.0},
        active_series={("wf-b", "waiting")},
        folded={("finished", "workflow"): ["wf-c"], ("finished", "status"): ["odd"], ("cost", "model"): ["m-b"]},
    )
    status, model, workflow = label_limiters(totals, [PendingSession(1.0, "running", 1.0, workflow="wf-d")], 5)
    assert status.values == {"done", "waiting", "odd"}
    assert model.values == {"m-a", "m-b"}
    assert workflow.values == {"wf-a", "wf-b", "wf-c", "wf-d"}


def test_one_cycles_increments_follow_the_one_definition_of_an_error():
    builder = TotalsBuilder((1.0, 10.0), LabelLimiter(10), LabelLimiter(10))
    builder.add(record("a", duration_seconds=0.5, tokens={"input": 3.0}, cost_usd=0.25, model="m"))
    builder.add(record("b", "failed", Outcome.ERROR, duration_seconds=5.0))
    builder.add(record("c", "stopped", Outcome.CANCELLED, error_text=True))  # a stop reason: no error
    builder.add(record("d", "succeeded", Outcome.SUCCESS, error_text=True))  # success with an error text
    totals = builder.totals
    assert totals.finished == {
        ("", "completed", "success"): 1,
        ("", "failed", "error"): 1,
        ("", "stopped", "cancelled"): 1,
        ("", "succeeded", "success"): 1,
    }
    assert totals.errors == {"": 2}
    assert totals.duration_buckets == {("", "success"): [1, 0, 0], ("", "error"): [0, 1, 0]}
    assert totals.tokens == {("", "input"): 3.0} and totals.cost == {("", "m"): 0.25}
    assert [r.session_id for r in builder.failures] == ["b"]


def test_workflow_values_go_through_the_label_cap():
    builder = TotalsBuilder((1.0,), LabelLimiter(10), LabelLimiter(10), LabelLimiter(2))
    for n, workflow in enumerate(("wf-a", "wf-b", "wf-c", "wf-d", "wf-a")):
        builder.add(record(f"s{n}", workflow=workflow, duration_seconds=0.5))
    assert builder.totals.finished == {
        ("wf-a", "completed", "success"): 2,
        ("wf-b", "completed", "success"): 1,
        ("other", "completed", "success"): 2,
    }
    assert set(builder.totals.duration_buckets) == {("wf-a", "success"), ("wf-b", "success"), ("other", "success")}


def test_the_renderer_draws_only_the_figures_a_provider_supplies():
    totals = SourceTotals(finished={("wf", "ended", "success"): 2}, bounds=[1.0], names={"wf": "Support bot"})
    views = {
        "k": SourceView("kapso", totals, {("wf", "handoff"): 1}, figures=frozenset()),
        "w": SourceView("whatabot", SourceTotals(warnings={"": 3.0}, bounds=[1.0]), figures=frozenset({"warnings"})),
    }
    registry = CollectorRegistry()
    registry.register(SessionMetrics((1.0,), lambda: views))
    k = {"source": "k", "provider": "kapso", "workflow": "wf"}
    assert registry.get_sample_value("agent_sessions_finished_total", k | {"status": "ended", "outcome": "success"}) == 2
    assert registry.get_sample_value("agent_sessions_active", k | {"status": "handoff"}) == 1
    assert registry.get_sample_value("agent_session_warnings_total", k) is None
    assert registry.get_sample_value("agent_session_errors_total", k) == 0
    assert registry.get_sample_value("agent_session_warnings_total", {"source": "w", "provider": "whatabot", "workflow": ""}) == 3
    assert (
        registry.get_sample_value(
            "agent_session_workflow_info", {"source": "k", "workflow": "wf", "workflow_name": "Support bot"}
        )
        == 1
    )


def test_exemplars_are_written_in_openmetrics_only_and_parse_back():
    from prometheus_client import generate_latest
    from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
    from prometheus_client.openmetrics.parser import text_string_to_metric_families

    builder = TotalsBuilder((1.0, 10.0), LabelLimiter(10), LabelLimiter(10), LabelLimiter(10), now=2000.0)
    builder.add(record("run-1", "failed", Outcome.ERROR, workflow="wf", duration_seconds=5.0, finished_at=1990.0))
    builder.add(record("x" * 200, "failed", Outcome.ERROR, workflow="wf", duration_seconds=0.5))  # too long an id
    view = SourceView(
        "kapso",
        builder.totals,
        finished_exemplars={k: builder.exemplar(r, 1.0) for k, r in builder.finished_exemplars.items()},
        duration_exemplars={k: builder.exemplar(r, r.duration_seconds) for k, r in builder.duration_exemplars.items()},
    )
    registry = CollectorRegistry()
    registry.register(SessionMetrics((1.0, 10.0), lambda: {"k": view}))
    assert b"session_id" not in generate_latest(registry)
    samples = {
        (s.name, s.labels.get("le")): s
        for family in text_string_to_metric_families(generate_openmetrics(registry).decode())
        for s in family.samples
    }
    finished = samples[("agent_sessions_finished_total", None)]
    assert finished.value == 2 and finished.exemplar is not None
    assert finished.exemplar.labels == {"session_id": "run-1"} and float(finished.exemplar.timestamp) == 1990.0
    bucket = samples[("agent_session_duration_seconds_bucket", "10.0")]
    assert bucket.exemplar.labels == {"session_id": "run-1"} and bucket.exemplar.value == 5.0
    assert samples[("agent_session_duration_seconds_bucket", "1.0")].exemplar is None  # the long id has none
