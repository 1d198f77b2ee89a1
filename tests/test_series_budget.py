"""The series budget (issue #24): each session metric family of a source stays within
``max_series_per_family`` series, every session is still counted once, series that exist keep
counting, and a restart folds exactly as the running exporter does."""

from __future__ import annotations

from typing import Any

from aioresponses import aioresponses

from agent_session_exporter.keep.sqlite import SqliteStore

from .helpers import Harness, Upstream, iso_ms, make_source, spring_page, whatabot_item


def item(n: int, workflow: str, status: str, started: float) -> dict[str, Any]:
    """A Whatabot session of workflow ``workflow`` (its ``flowId``); a status Whatabot does not know
    ends with outcome ``unknown`` once it has a finish time."""
    return {**whatabot_item(n, status=status, started=started), "flowId": workflow}


def whatabot_list(items: list[dict[str, Any]]) -> Upstream:
    """Whatabot's session list, newest first as asked, in pages (and one session by ``sessionId``)."""

    def serve(path: str, query: dict[str, str]) -> dict[str, Any]:
        rows = sorted(items, key=lambda i: i["startedAt"], reverse=True)
        if "sessionId" in query:
            rows = [row for row in rows if row["id"] == query["sessionId"]]
        page, size = int(query["page"]), int(query["size"])
        return spring_page(rows[page * size : (page + 1) * size], page, size, len(rows))

    return Upstream(serve)


def series(h: Harness, family: str) -> dict[tuple[tuple[str, str], ...], float]:
    """The source's series of ``family`` (a sample name), by their labels (source and provider left out)."""
    return {
        tuple(sorted((k, v) for k, v in s.labels.items() if k not in ("source", "provider"))): s.value
        for f in h.registry.collect()
        for s in f.samples
        if s.name == family and s.labels.get("source") == h.source.name
    }


def session_families(h: Harness) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the session families, by name and labels."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for f in h.poller.session_metrics.collect() for s in f.samples}


async def test_a_hundred_workflows_by_a_hundred_statuses_stay_within_the_budget(http_session, clock, logs):
    """Issue #24: each label was capped at 100 values, and their product made 10,000 series of
    ``agent_sessions_finished`` from one source. Within the default budget of 2000, every session is
    still counted, and as ``workflow`` folds first, the sums by status stay exact."""
    now = clock.now
    items = [item(n, f"wf-{n % 100:02d}", f"status-{n // 100:02d}", now - 100 - n * 0.25) for n in range(10_000)]
    h = Harness(make_source("whatabot"), http_session, clock)
    with aioresponses() as m:
        m.get(Upstream.pattern(), callback=whatabot_list(items), repeat=True)
        assert await h.poller.run_cycle()
    finished = series(h, "agent_sessions_finished_total")
    assert len(finished) <= 2000
    assert sum(finished.values()) == 10_000
    by_status: dict[str, float] = {}
    for labels, value in finished.items():
        by_status[dict(labels)["status"]] = by_status.get(dict(labels)["status"], 0) + value
    assert by_status == {f"status-{k:02d}": 100 for k in range(100)}
    assert ("workflow", "other") in {pair for labels in finished for pair in labels}
    assert sum(series(h, "agent_session_duration_seconds_count").values()) == 10_000
    assert len(series(h, "agent_session_duration_seconds_count")) <= 2000
    folded = series(h, "agent_session_exporter_series_folded_total")
    assert folded[(("family", "agent_sessions_finished"), ("label", "workflow"))] > 0
    assert folded[(("family", "agent_sessions_finished"), ("label", "status"))] == 0
    warnings = [line for line in logs("warning") if "series budget" in line["msg"]]
    assert [line["family"] for line in warnings] == ["agent_sessions_finished"]


async def test_series_that_exist_keep_counting_after_folding_starts(http_session, clock, logs):
    """Folding only moves label sets that have no series yet: one that has keeps counting, nothing
    is reset or counted twice, and the warning is said once."""
    now = clock.now
    # A budget of 10 leaves agent_sessions_finished 4 label sets of its own: room is kept for one
    # with only the workflow folded (a tenth) and for each outcome's fully folded one.
    items = [item(n, f"wf-{n}", "completed", now - 100 + n) for n in range(4)]
    h = Harness(make_source("whatabot", max_series_per_family=10), http_session, clock)
    with aioresponses() as m:
        m.get(Upstream.pattern(), callback=whatabot_list(items), repeat=True)
        assert await h.poller.run_cycle()
        before = series(h, "agent_sessions_finished_total")
        assert len(before) == 4 and ("workflow", "other") not in {p for labels in before for p in labels}
        for cycle in range(1, 4):
            clock.advance(30)
            items += [item(100 * cycle + n, f"wf-{n}", "completed", clock.now - 20 + n) for n in range(4)]
            items += [item(100 * cycle + 10 + n, f"new-{cycle}-{n}", "error", clock.now - 10 + n) for n in range(3)]
            assert await h.poller.run_cycle()
    after = series(h, "agent_sessions_finished_total")
    for labels, value in before.items():
        assert after[labels] == value + 3  # one more session in each of the three cycles
    assert after[(("outcome", "error"), ("status", "error"), ("workflow", "other"))] == 9
    assert len(after) == 5 and sum(after.values()) == len(items) == 4 + 3 * 7
    assert sum(series(h, "agent_session_errors_total").values()) == 9
    assert sum(series(h, "agent_session_duration_seconds_count").values()) == len(items)
    # The histogram's label sets (workflow, outcome) fold too (past 5 of their own: it has only the
    # workflow to fold): once each family folds, a warning says so, once.
    assert [line["family"] for line in logs("warning") if "series budget" in line["msg"]] == [
        "agent_session_duration_seconds",
        "agent_sessions_finished",
    ]


async def test_a_restart_folds_as_the_running_exporter_does(http_session, clock, tmp_path):
    """Two exporters read the same upstream; one restarts from its SQLite state between cycles.
    They show the same series, and go on folding alike, the active gauge included (its series come
    and go with the pending sessions, and the state keeps which it has)."""
    now = clock.now
    # Eight sessions running: the active gauge's eight series of its own (of a budget of 10, room is
    # kept for one with only the workflow folded, and for the fully folded one).
    items = [item(n, f"wf-a{n}", "running", now - 100 + n) for n in range(8)]

    def exporter(name: str) -> Harness:
        source = make_source("whatabot", max_series_per_family=10)
        return Harness(source, http_session, clock, store=SqliteStore(str(tmp_path / name), {source.name: "whatabot"}))

    steady, restarted = exporter("steady.db"), exporter("restarted.db")

    async def cycle() -> None:
        assert await steady.poller.run_cycle() and await restarted.poller.run_cycle()

    with aioresponses() as m:
        m.get(Upstream.pattern(), callback=whatabot_list(items), repeat=True)
        await cycle()
        assert len(series(steady, "agent_sessions_active")) == 8
        clock.advance(30)
        # They finish (more finished label sets than the budget leaves), and nine other workflows
        # start: the gauge has no room left for them, so they show as workflow "other".
        for n in range(8):
            items[n] = {**items[n], "status": "completed", "finishedAt": iso_ms(now - 50 + n)}
        items += [item(10 + n, f"wf-b{n}", "running", clock.now - 20 + n) for n in range(9)]
        await cycle()
        assert series(steady, "agent_sessions_active") == {(("status", "running"), ("workflow", "other")): 9}
        restarted.poller.store.close()
        restarted = exporter("restarted.db")
        assert session_families(restarted) == session_families(steady)
        clock.advance(30)
        items += [item(20 + n, f"wf-c{n}", "running", clock.now - 20 + n) for n in range(3)]
        items += [item(30 + n, f"wf-b{n}", "error", clock.now - 10 + n) for n in range(3)]
        await cycle()
    assert session_families(restarted) == session_families(steady)
    assert series(restarted, "agent_session_exporter_series_folded_total") == series(
        steady, "agent_session_exporter_series_folded_total"
    )
    assert (
        series(steady, "agent_session_exporter_series_folded_total")[(("family", "agent_sessions_active"), ("label", "workflow"))]
        == 12
    )
    steady.poller.store.close()
    restarted.poller.store.close()
