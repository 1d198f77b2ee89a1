"""Each provider against aioresponses payloads shaped exactly like its documentation (shared/seeds)."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from aioresponses import CallbackResult, aioresponses

from agent_session_exporter.model import KnownRows, Outcome, PendingRef, Phase, PollResult, PollWindow
from agent_session_exporter.read.providers.dify_pages import PAGE
from agent_session_exporter.timeparse import parse_timestamp, to_iso

from .helpers import KEY, Harness, Upstream, make_source, spring_page, sum_samples, whatabot_item
from .helpers import iso_ms as iso

NOW = 1_780_000_000.0  # 2026-05-28T20:26:40Z


def whatabot_pages(items: list[dict[str, Any]]) -> Upstream:
    """Whatabot's list of ``items`` (newest first), served a page at a time as ``page``/``size`` ask."""

    def serve(path: str, params: dict[str, str]) -> Any:
        page, size = int(params["page"]), int(params["size"])
        return spring_page(items[page * size : (page + 1) * size], page, size, len(items))

    return Upstream(serve)


def dify_pages(logs: list[dict[str, Any]]) -> Upstream:
    """Dify's log rows ``logs``, served a page at a time as ``page``/``limit`` ask."""

    def serve(path: str, params: dict[str, str]) -> Any:
        page, limit = int(params["page"]), int(params["limit"])
        return {
            "page": page,
            "limit": limit,
            "total": len(logs),
            "has_more": len(logs) > page * limit,
            "data": logs[(page - 1) * limit : page * limit],
        }

    return Upstream(serve)


# --- Whatabot ----------------------------------------------------------------------------------


async def test_whatabot_pages_to_the_last_page_with_documented_params(http_session, clock):
    items = [whatabot_item(i, started=NOW - 10 - i) for i in range(150)]

    upstream = whatabot_pages(items)
    h = Harness(make_source("whatabot", workspace_id="ws-1"), http_session, clock)
    with aioresponses() as m:
        m.get(Upstream.pattern(), callback=upstream, repeat=True)
        result = await h.provider.poll(PollWindow(since=NOW - 3600, now=NOW))
    assert [c[1]["page"] for c in upstream.calls] == ["0", "1"]
    path, params, headers = upstream.calls[0]
    assert path == "/sessions/logs"
    assert params["size"] == "100" and params["direction"] == "DESC" and params["orderBy"] == "startedAt"
    assert params["workspaceId"] == "ws-1" and params["dateRange"] == "last7days"
    assert headers["X-Api-Key"] == KEY
    assert len(result.records) == 150
    first = result.records[0]
    assert first.phase is Phase.FINISHED and first.outcome is Outcome.SUCCESS
    assert first.duration_seconds == pytest.approx(135.0)


async def test_whatabot_stops_paging_once_a_page_reaches_past_the_window(http_session, clock):
    items = [whatabot_item(i, started=NOW - 60 * i) for i in range(300)]  # one per minute, newest first

    upstream = whatabot_pages(items)
    h = Harness(make_source("whatabot"), http_session, clock)
    with aioresponses() as m:
        m.get(Upstream.pattern(), callback=upstream, repeat=True)
        await h.provider.poll(PollWindow(since=NOW - 30 * 60))
    assert len(upstream.calls) == 1


async def test_whatabot_session_running_then_finished_counts_once(http_session, clock):
    clock.now = NOW
    state = {"status": "running"}

    def serve(path: str, params: dict[str, str]) -> Any:
        return spring_page([whatabot_item(1, status=state["status"], started=NOW - 50, warnings=2)], 0, 100, 1)

    h = Harness(make_source("whatabot"), http_session, clock)
    with aioresponses() as m:
        m.get(Upstream.pattern(), callback=Upstream(serve), repeat=True)
        assert await h.poller.run_cycle()
        assert h.finished() == 0
        assert h.value("agent_sessions_active", status="running") == 1
        state["status"] = "timeout"
        for _ in range(3):
            clock.advance(30)
            assert await h.poller.run_cycle()
    assert h.finished(status="timeout", outcome="timeout") == 1
    assert h.value("agent_sessions_active", status="running") == 0
    assert h.value("agent_session_errors_total") == 1
    assert h.value("agent_session_warnings_total") == 2
    assert h.value("agent_session_duration_seconds_count", outcome="timeout") == 1


async def test_whatabot_rechecks_old_pending_sessions_with_the_session_id_filter(http_session, clock):
    h = Harness(make_source("whatabot"), http_session, clock)

    def serve(path: str, params: dict[str, str]) -> Any:
        if params.get("sessionId") == whatabot_item(7)["id"]:
            return spring_page([whatabot_item(7, status="completed", started=NOW - 7200)], 0, 1, 1)
        return spring_page([], 0, 100, 0)

    upstream = Upstream(serve)
    with aioresponses() as m:
        m.get(Upstream.pattern(), callback=upstream, repeat=True)
        result = await h.provider.poll(
            PollWindow(since=NOW - 600, stale_pending=(PendingRef(whatabot_item(7)["id"], NOW - 7200),))
        )
    assert upstream.calls[-1][1]["sessionId"] == whatabot_item(7)["id"]
    assert [r.outcome for r in result.records] == [Outcome.SUCCESS]


async def test_whatabot_probes_a_band_by_the_row_at_the_offset_of_the_rows_known(http_session, clock):
    """Newest first: the rows added since the read (counted on the first page), then the known ones
    from the band's start on. With nothing late, the row at that offset is older than the band."""
    h = Harness(make_source("whatabot", page_size=5), http_session, clock)
    known_items = [whatabot_item(n, started=NOW - 10 * n) for n in range(1, 9)]  # NOW-10 .. NOW-80
    known = KnownRows(sorted(parse_timestamp(item["startedAt"]) for item in known_items))
    low = NOW - 55  # the band: the five known rows from NOW-50 to NOW-10 (and anything newer)

    added = [whatabot_item(100 + n, started=NOW + 5 - n) for n in range(2)]
    late = whatabot_item(99, started=NOW - 45)
    cases = [
        (known_items, True),
        (added + known_items, True),
        (sorted(added + known_items + [late], key=lambda i: i["startedAt"], reverse=True), False),
        (known_items[:4], None),
    ]  # fewer rows than known: not the list that was read
    for rows, expected in cases:
        upstream = whatabot_pages(rows)
        with aioresponses() as m:
            m.get(Upstream.pattern(), callback=upstream, repeat=True)
            assert await h.provider.band_holds(low, NOW - 10, known) is expected, (len(rows), expected)
        first, probe = upstream.calls[0][1], upstream.calls[-1][1]
        assert first["page"] == "0" and first["orderBy"] == "startedAt" and first["direction"] == "DESC"
        assert probe["size"] == "1" and probe["page"] == str(5 + (2 if rows[0] in added else 0))
    many = [whatabot_item(200 + n, started=NOW + 50 - n) for n in range(5)] + known_items
    with aioresponses() as m:
        m.get(Upstream.pattern(), callback=whatabot_pages(many), repeat=True)
        assert await h.provider.band_holds(low, NOW - 10, known) is None  # a full page of new rows: cannot tell


# --- Dify --------------------------------------------------------------------------------------


def dify_log(n: int, status: str = "succeeded", created: int = int(NOW) - 100, **run: Any) -> dict[str, Any]:
    workflow_run = {
        "id": f"run-{n}",
        "version": "2025-01-16 12:00:00.000000",
        "status": status,
        "error": None,
        "elapsed_time": 1.23,
        "total_tokens": 150,
        "total_steps": 3,
        "created_at": created,
        "finished_at": None if status == "running" else created + 1,
        "exceptions_count": 0,
        "triggered_from": "app",
    }
    workflow_run.update(run)
    return {
        "id": f"log-{n}",
        "workflow_run": workflow_run,
        "created_from": "service-api",
        "created_by_role": "end_user",
        "created_by_account": None,
        "created_by_end_user": {"id": "f1e2", "type": "service_api", "is_anonymous": False, "session_id": "user_workflow_123"},
        "created_at": created,
    }


async def test_dify_a_failed_runs_exceptions_count_is_no_warning_its_failure_is_the_error(http_session, clock):
    """Dify counts the failing node in ``exceptions_count`` (1 on every failed run of a real 1.13.2): that
    is the run's error, not a warning. A partial success's handled node errors stay its warnings. Both
    ways of reading a page (typed structs, item by item) agree."""
    clock.now = NOW
    logs = [
        dify_log(1, status="failed", error="node crashed", exceptions_count=1, created=int(NOW) - 1),
        dify_log(2, status="partial-succeeded", exceptions_count=2, created=int(NOW) - 2),
        dify_log(3, status="succeeded", created=int(NOW) - 3),
    ]
    h = Harness(make_source("dify"), http_session, clock)
    with aioresponses() as m:
        m.get(Upstream.pattern(), callback=dify_pages(logs), repeat=True)
        assert await h.poller.run_cycle()
    assert h.value("agent_session_warnings_total") == 2
    assert h.value("agent_session_errors_total") == 1
    plain = {r.session_id: r.warnings for r in map(h.provider.parse_item, logs) if r is not None}
    assert plain == {"run-1": 0.0, "run-2": 2.0, "run-3": 0.0}


async def test_dify_pages_with_has_more_and_reads_the_run(http_session, clock):
    logs = [dify_log(i, created=int(NOW) - i) for i in range(45)]
    logs[3] = dify_log(3, status="partial-succeeded", exceptions_count=2, created=int(NOW) - 3)
    logs[4] = dify_log(4, status="failed", error="node crashed", created=int(NOW) - 4)

    upstream = dify_pages(logs)
    h = Harness(make_source("dify", page_size=20), http_session, clock)
    with aioresponses() as m:
        m.get(Upstream.pattern(), callback=upstream, repeat=True)
        result = await h.provider.poll(PollWindow(since=NOW - 3600, now=NOW))
    assert [c[1]["page"] for c in upstream.calls] == ["1", "2", "3"]
    path, params, headers = upstream.calls[0]
    assert path == "/workflows/logs" and params["limit"] == "20"
    assert parse_timestamp(params["created_at__after"]) == NOW - 3600
    assert headers["Authorization"] == f"Bearer {KEY}"
    by_id = {r.session_id: r for r in result.records}
    assert len(by_id) == 45
    assert by_id["run-3"].outcome is Outcome.SUCCESS and by_id["run-3"].warnings == 2
    assert by_id["run-4"].outcome is Outcome.ERROR and by_id["run-4"].error_text
    assert by_id["run-0"].duration_seconds == 1.23 and by_id["run-0"].tokens == {"total": 150}


async def test_dify_stopped_is_cancelled_and_running_is_active(http_session, clock):
    h = Harness(make_source("dify"), http_session, clock)
    assert h.provider.parse_item(dify_log(1, status="stopped")).outcome is Outcome.CANCELLED
    running = h.provider.parse_item(dify_log(2, status="running"))
    assert running.phase is Phase.ACTIVE and running.outcome is None


async def test_dify_run_listed_while_running_counts_once_when_it_ends(http_session, clock):
    clock.now = NOW
    log = dify_log(1, status="running", created=int(NOW) - 30)

    def serve(path: str, params: dict[str, str]) -> Any:
        return {"page": 1, "limit": 100, "total": 1, "has_more": False, "data": [copy.deepcopy(log)]}

    h = Harness(make_source("dify"), http_session, clock)
    with aioresponses() as m:
        m.get(Upstream.pattern(), callback=Upstream(serve), repeat=True)
        assert await h.poller.run_cycle()
        assert h.finished() == 0 and h.value("agent_sessions_active", status="running") == 1
        log["workflow_run"].update(status="failed", error="LLM node timed out", finished_at=int(NOW), total_tokens=900)
        for _ in range(3):
            clock.advance(30)
            assert await h.poller.run_cycle()
    assert h.finished(status="failed", outcome="error") == 1
    assert h.value("agent_sessions_active", status="running") == 0
    assert h.value("agent_session_tokens_total", token_type="total") == 900
    assert h.value("agent_session_errors_total") == 1


async def test_dify_looks_a_pending_run_up_in_the_rows_of_its_own_second(http_session, clock):
    """The run detail has no exceptions_count: the lookup reads the log rows of the run's second
    instead, page by page until the run's row is among them."""
    second = int(NOW) - 30
    rows = [dify_log(n, created=second) for n in range(5)]
    rows[3] = dify_log(3, status="partial-succeeded", exceptions_count=2, created=second)

    upstream = dify_pages(rows)
    h = Harness(make_source("dify", page_size=2), http_session, clock)
    result = PollResult()
    with aioresponses() as m:
        m.get(Upstream.pattern(), callback=upstream, repeat=True)
        await h.provider.recheck_pending([PendingRef("run-3", float(second))], result, h.provider.fetch_one)
    assert [c[1]["page"] for c in upstream.calls] == ["1", "2"]  # its row is on the second page: no third
    params = upstream.calls[0][1]
    assert params["created_at__after"] == to_iso(second) and params["created_at__before"] == to_iso(second + 0.999999)
    found = {r.session_id: r for r in result.records}
    assert found["run-3"].warnings == 2 and not result.unreadable and not result.gone


async def test_dify_probes_a_band_by_its_count_on_whole_seconds_and_knows_rows_without_a_run(http_session, clock):
    """The count probe asks for one row of the band: created_at is shown in whole seconds, so the bounds
    are whole seconds, the upper one reaching to the end of its second."""
    h = Harness(make_source("dify"), http_session, clock)
    answers = [
        {"page": 1, "limit": 1, "total": 7, "has_more": True, "data": [dify_log(1)]},
        {"page": 1, "limit": 1, "has_more": False, "data": []},
    ]
    upstream = Upstream(lambda path, params: answers.pop(0))
    with aioresponses() as m:
        m.get(Upstream.pattern(), callback=upstream, repeat=True)
        known = KnownRows([NOW - 60 + i for i in range(8)])  # seven of them inside the band
        assert await h.provider.band_holds(NOW - 60.4, NOW - 54, known) is True
        assert await h.provider.band_holds(NOW - 60, NOW, known) is None  # no total: cannot tell (the sweep reads)
    params = upstream.calls[0][1]
    assert params["limit"] == "1" and params["page"] == "1"
    assert params["created_at__after"] == to_iso(NOW - 60)
    assert params["created_at__before"] == to_iso(NOW - 54 + 0.999999)
    row = {**dify_log(2, created=int(NOW) - 5), "workflow_run": None}
    result = PollResult()
    assert h.provider.parse_items([dify_log(1), row], result) and result.skipped == {"log-2": NOW - 5}
    typed = PollResult()
    h.provider.parse_items(PAGE.decode(json.dumps({"data": [row]})).data, typed)
    assert typed.records == [] and typed.skipped == {"log-2": NOW - 5} and typed.invalid == []


# --- Syntropic137 ------------------------------------------------------------------------------


def syntropic_item(n: int, started: float, status: str = "completed") -> dict[str, Any]:
    from datetime import datetime, timezone

    text = lambda ts: str(datetime.fromtimestamp(ts, timezone.utc))  # noqa: E731 - str(datetime), as upstream does
    return {
        "id": f"s-{n}",
        "workflow_id": "wf",
        "workflow_name": "w",
        "execution_id": "e",
        "phase_id": "p",
        "phase_display": "P",
        "status": status,
        "agent_provider": "anthropic",
        "agent_model": "claude-sonnet-4",
        "agent_model_display": "Claude",
        "repos": [],
        "repos_display": "",
        "input_tokens": 100,
        "output_tokens": 20,
        "cache_creation_tokens": 5,
        "cache_read_tokens": 300,
        "total_tokens": 425,
        "total_tokens_display": "425",
        "total_cost_usd": "0.1234",
        "total_cost_display": "$0.12",
        "duration_seconds": None if status == "running" else 12.5,
        "duration_display": "12s",
        "started_at": text(started),
        "completed_at": None if status == "running" else text(started + 12.5),
    }


async def test_syntropic_pages_backwards_and_the_boundary_item_comes_back(http_session, clock):
    sessions = [syntropic_item(i, NOW - 10 * i - 0.123456) for i in range(450)]  # newest first

    def serve(path: str, params: dict[str, str]) -> Any:
        after = parse_timestamp(params["started_after"])
        before = parse_timestamp(params.get("started_before"))
        chosen = [
            s
            for s in sessions
            if parse_timestamp(s["started_at"]) >= after and (before is None or parse_timestamp(s["started_at"]) <= before)
        ][: int(params["limit"])]
        return {"sessions": chosen, "total": len(chosen)}

    upstream = Upstream(serve)
    h = Harness(make_source("syntropic137", workflow_id="wf"), http_session, clock)
    with aioresponses() as m:
        m.get(Upstream.pattern(), callback=upstream, repeat=True)
        result = await h.provider.poll(PollWindow(since=NOW - 86400))
    assert len(upstream.calls) == 3
    assert "started_before" not in upstream.calls[0][1]
    assert upstream.calls[0][1]["limit"] == "200" and upstream.calls[0][1]["workflow_id"] == "wf"
    assert "Authorization" not in upstream.calls[0][2]
    ids = [r.session_id for r in result.records]
    assert len(ids) == 452 and len(set(ids)) == 450  # two boundary items came back once more
    record = result.records[0]
    assert record.tokens == {"input": 100, "output": 20, "cache_read": 300, "cache_creation": 5}
    assert record.cost_usd == pytest.approx(0.1234) and record.model == "claude-sonnet-4"
    assert record.duration_seconds == 12.5


async def test_syntropic_boundary_duplicates_count_once_and_detail_rechecks_pending(http_session, clock):
    clock.now = NOW
    running = syntropic_item(99, NOW - 3 * 3600, status="running")
    page = [syntropic_item(i, NOW - 10 * i) for i in range(3)]

    def serve(path: str, params: dict[str, str]) -> Any:
        if path == "/sessions/s-99":
            return running
        return {"sessions": page + [page[-1]], "total": 4}

    upstream = Upstream(serve)
    h = Harness(make_source("syntropic137", api_key="k-123456", initial_lookback="4h", overlap="1m"), http_session, clock)
    with aioresponses() as m:
        m.get(Upstream.pattern(), callback=upstream, repeat=True)
        page.append(running)
        assert await h.poller.run_cycle()
        page.pop()
        assert h.finished() == 3 and h.value("agent_sessions_active", status="running") == 1
        running.update(syntropic_item(99, NOW - 3 * 3600, status="failed"), error_message="boom")
        clock.advance(30)
        assert await h.poller.run_cycle()
    assert upstream.paths["/sessions/s-99"] == 1
    assert upstream.calls[0][2]["Authorization"] == "Bearer k-123456"
    assert h.finished() == 4 and h.finished(status="failed", outcome="error") == 1
    assert h.value("agent_session_tokens_total", token_type="cache_read") == 4 * 300
    assert h.value("agent_session_cost_usd_total", model="claude-sonnet-4") == pytest.approx(4 * 0.1234)


async def test_syntropic_detail_404_drops_the_pending_session(http_session, clock):
    h = Harness(make_source("syntropic137"), http_session, clock)
    with aioresponses() as m:
        m.get("http://api.test/sessions/gone-1", status=404, payload={"detail": []})
        m.get(Upstream.pattern(), payload={"sessions": [], "total": 0}, repeat=True)
        result = await h.provider.poll(PollWindow(since=NOW, stale_pending=(PendingRef("gone-1", NOW - 9000),)))
    assert result.gone == ["gone-1"]


# --- HoneyHive ---------------------------------------------------------------------------------


def honeyhive_session(n: int, start_ms: int, end_ms: int | None, error: str | None = None) -> dict[str, Any]:
    return {
        "children": [{}],
        "config": {},
        "duration": None if end_ms is None else end_ms - start_ms,
        "end_time": end_ms,
        "error": error,
        "event_id": f"ev-{n}",
        "event_name": "s",
        "event_type": "session",
        "feedback": {},
        "inputs": {},
        "metadata": {"prompt_tokens": 1000, "completion_tokens": 200, "total_tokens": 1200, "cost": 0.05},
        "metrics": {},
        "outputs": {},
        "project": "proj",
        "session_id": f"hh-{n}",
        "source": "prod",
        "start_time": start_ms,
        "user_properties": {},
    }


async def test_honeyhive_sessions_api_sends_project_and_limit_and_reads_milliseconds(http_session, clock):
    start = int(NOW * 1000) - 60_000
    upstream = Upstream(lambda path, params: [honeyhive_session(1, start, start + 4_500)])
    h = Harness(make_source("honeyhive", api="sessions", page_size=500), http_session, clock)
    with aioresponses() as m:
        m.get(Upstream.pattern(), callback=upstream, repeat=True)
        result = await h.provider.poll(PollWindow(since=NOW - 3600))
    path, params, headers = upstream.calls[0]
    assert path == "/session" and params == {"project": "proj", "limit": "500"}
    assert headers["Authorization"] == f"Bearer {KEY}"
    record = result.records[0]
    assert record.started_at == pytest.approx(NOW - 60) and record.duration_seconds == pytest.approx(4.5)
    assert record.phase is Phase.SETTLING and record.tokens == {"input": 1000, "output": 200}


def honeyhive_search(events: list[dict[str, Any]], count: int | None = None) -> Upstream:
    """HoneyHive's ``POST /v1/events/search``: ``events`` (newest start first, as the route orders them)
    filtered by its ``is`` filters and ``dateRange`` on ``start_time``, a page at a time; ``count`` the
    answer's count (by default the total matched)."""

    def serve(path: str, params: dict[str, Any]) -> Any:
        body = upstream.bodies[-1]
        wanted = {rule["field"]: rule["value"] for rule in body["filters"] if rule["operator"] == "is"}
        low, high = (parse_timestamp(body["dateRange"][key]) for key in ("start_time", "end_time"))
        chosen = [
            e
            for e in events
            if low <= e["start_time"] / 1000 <= high and all(str(e.get(field)) == value for field, value in wanted.items())
        ]
        page, limit = body["page"], body["limit"]
        return {"events": chosen[(page - 1) * limit : page * limit], "count": len(chosen) if count is None else count}

    upstream = Upstream(serve)
    return upstream


async def test_honeyhive_search_is_the_default_posts_the_documented_query_and_never_ends_on_count(http_session, clock):
    """Newest first, paged until a short page whatever ``count`` says (here it says 2 of 10); no
    ``project`` (the key is project-scoped); a steady cycle then reads what is new, on one page."""
    clock.now = NOW
    events = [honeyhive_session(n, int(NOW * 1000) - 60_000 - n * 1000, int(NOW * 1000) - 50_000) for n in range(10)]
    upstream = honeyhive_search(events, count=2)
    h = Harness(make_source("honeyhive", page_size=4, settle_after=0, project=None), http_session, clock)
    assert h.source.api == "search" and h.provider.PENDING_RECHECK == "lookup" and not h.provider.PROBES
    with aioresponses() as m:
        m.post(Upstream.pattern(), callback=upstream, repeat=True)
        assert await h.poller.run_cycle()
        assert h.finished() == 10 and [b["page"] for b in upstream.bodies] == [1, 2, 3]
        body = upstream.bodies[0]
        assert upstream.calls[0][0] == "/v1/events/search" and upstream.calls[0][2]["Authorization"] == f"Bearer {KEY}"
        assert set(body) == {"filters", "dateRange", "limit", "page"} and body["limit"] == 4
        assert body["filters"] == [{"field": "event_type", "operator": "is", "value": "session", "type": "string"}]
        assert parse_timestamp(body["dateRange"]["start_time"]) == NOW - 86400
        assert parse_timestamp(body["dateRange"]["end_time"]) > NOW
        events.insert(0, honeyhive_session(10, int(NOW * 1000) - 1000, int(NOW * 1000) - 500))
        upstream.bodies.clear()
        clock.advance(30)
        assert await h.poller.run_cycle()
    assert h.finished() == 11 and [b["page"] for b in upstream.bodies] == [1]  # what is new: one page
    assert parse_timestamp(upstream.bodies[0]["dateRange"]["start_time"]) == pytest.approx(NOW - 60, abs=1e-3)
    assert h.value("agent_session_exporter_upstream_order_ok") == 1


async def test_honeyhive_search_order_is_verified_and_a_list_out_of_order_is_read_whole(http_session, clock, logs):
    clock.now = NOW
    events = [honeyhive_session(n, int(NOW * 1000) - 60_000 + n * 1000, int(NOW * 1000) - 1000) for n in range(10)]
    upstream = honeyhive_search(events)  # oldest first: not the order the route promises
    h = Harness(make_source("honeyhive", page_size=4, settle_after=0), http_session, clock)
    with aioresponses() as m:
        m.post(Upstream.pattern(), callback=upstream, repeat=True)
        assert await h.poller.run_cycle()
    assert h.finished() == 10 and h.value("agent_session_exporter_upstream_order_ok") == 0
    assert [line["parameter"] for line in logs("error")] == ["start_time (the search's own order)"]


async def test_honeyhive_search_looks_pending_sessions_up_by_session_id(http_session, clock):
    """A pending session older than the read is looked up alone with a ``session_id is`` filter; one the
    search no longer has is gone. Child events let through are never counted."""
    clock.now = NOW
    old_start = int(NOW * 1000) - 7_200_000
    running = honeyhive_session(1, old_start, None)
    child = {**honeyhive_session(1, old_start + 10, old_start + 20), "event_id": "ev-child", "event_type": "model"}
    events = [child, running]
    upstream = honeyhive_search(events)
    h = Harness(make_source("honeyhive", settle_after=60), http_session, clock)
    refs = (PendingRef("hh-1", old_start / 1000), PendingRef("hh-gone", NOW - 5000))
    with aioresponses() as m:
        m.post(Upstream.pattern(), callback=upstream, repeat=True)
        result = await h.provider.poll(PollWindow(since=NOW - 600, now=NOW, stale_pending=refs))
    assert [r.session_id for r in result.records] == ["hh-1"] and result.gone == ["hh-gone"]
    assert len(upstream.bodies) == 3  # the read, then one lookup each
    lookup = upstream.bodies[1]
    assert lookup["filters"][1] == {"field": "session_id", "operator": "is", "value": "hh-1", "type": "string"}
    assert parse_timestamp(lookup["dateRange"]["start_time"]) <= old_start / 1000


async def test_honeyhive_events_probe_a_band_by_its_count_on_whole_milliseconds(http_session, clock):
    h = Harness(make_source("honeyhive", api="events"), http_session, clock)
    assert h.provider.PROBES and not Harness(make_source("honeyhive", api="sessions"), http_session, clock).provider.PROBES
    known = KnownRows([NOW - 30.0004, NOW - 20.123, NOW - 10.5, NOW - 5.0])
    answers = [{"events": [], "totalEvents": 2}, {"events": [], "count": 3}, {"events": []}]
    upstream = Upstream(lambda path, params: answers.pop(0))
    with aioresponses() as m:
        m.post(Upstream.pattern(), callback=upstream, repeat=True)
        assert await h.provider.band_holds(NOW - 20.1234, NOW - 10.2, known) is True  # v1: totalEvents
        assert await h.provider.band_holds(NOW - 20.1234, NOW - 10.2, known) is False  # v2: count, one late
        assert await h.provider.band_holds(NOW - 20.1234, NOW - 10.2, known) is None  # no count: cannot tell
    body = upstream.bodies[0]
    assert body["limit"] == 1 and body["filters"][0]["value"] == "session"
    assert body["dateRange"] == {"$gte": to_iso(NOW - 20.123), "$lte": to_iso(NOW - 10.2 + 0.000999)}


async def test_honeyhive_session_counts_once_its_end_time_stops_moving(http_session, clock):
    clock.now = NOW
    start = int(NOW * 1000) - 30_000
    session = honeyhive_session(1, start, start + 10_000, error="tool failed")
    h = Harness(make_source("honeyhive", settle_after=60), http_session, clock)
    with aioresponses() as m:
        m.post(Upstream.pattern(), callback=Upstream(lambda p, q: {"events": [session], "count": 1}), repeat=True)
        await h.poller.run_cycle()
        assert h.finished() == 0 and h.value("agent_sessions_active", status="running") == 1
        clock.advance(40)
        session.update(honeyhive_session(1, start, start + 50_000, error="tool failed"))  # still moving
        await h.poller.run_cycle()
        clock.advance(30)  # the end time (NOW+20) has not moved for 50 s
        await h.poller.run_cycle()
        assert h.finished() == 0
        clock.advance(15)  # 65 s
        await h.poller.run_cycle()
        clock.advance(300)
        await h.poller.run_cycle()
    assert h.finished(status="ended", outcome="error") == 1
    assert h.value("agent_session_errors_total") == 1
    assert h.value("agent_session_cost_usd_total", model="unknown") == pytest.approx(0.05)
    assert h.value("agent_session_duration_seconds_sum", outcome="error") == pytest.approx(50.0)


# --- Kapso -------------------------------------------------------------------------------------


def kapso_execution(n: int, started: float, ended: float | None, status: str | None = None) -> dict[str, Any]:
    item = {
        "id": f"3c90c3cc-0d44-4b50-8888-{n:012d}",
        "started_at": iso(started),
        "last_event_at": iso(started),
        "ended_at": None if ended is None else iso(ended),
        "tracking_id": "t",
        "whatsapp_conversation_id": "w",
        "workflow": {"id": "wf-a", "name": "<string>", "status": "active"},
        "current_step": {"id": "c", "identifier": "<string>", "stepable_type": "<string>", "position": {"x": 123, "y": 123}},
    }
    if status is not None:
        item["status"] = status
    return item


def kapso_pages(executions: list[dict[str, Any]], size: int):
    def serve(path: str, params: dict[str, str]) -> Any:
        chosen = [e for e in executions if params.get("status") in (None, e["_status"])]
        start = int(params.get("after", "0"))
        chunk = chosen[start : start + size]
        more = start + size < len(chosen)
        return {
            "data": [{k: v for k, v in e.items() if k != "_status"} for e in chunk],
            "paging": {
                "cursors": {"before": str(start), "after": str(start + size)},
                "next": f"{path}?after={start + size}" if more else None,
                "previous": None,
            },
        }

    return serve


async def test_kapso_follows_after_cursors_and_reads_the_status_field(http_session, clock):
    executions = [dict(kapso_execution(i, NOW - 100 - i, NOW - 50, status="ended"), _status="ended") for i in range(250)]
    upstream = Upstream(kapso_pages(executions, 100))
    h = Harness(make_source("kapso", workflow_ids=["wf-a", "wf-b"]), http_session, clock)
    with aioresponses() as m:
        m.get(Upstream.pattern(), callback=upstream, repeat=True)
        result = await h.provider.poll(PollWindow(since=NOW - 3600))
    assert [c[0] for c in upstream.calls] == ["/workflows/wf-a/executions"] * 3 + ["/workflows/wf-b/executions"] * 3
    assert [c[1].get("after") for c in upstream.calls[:3]] == [None, "100", "200"]
    assert upstream.calls[0][2]["X-API-Key"] == KEY and upstream.calls[0][1]["limit"] == "100"
    assert parse_timestamp(upstream.calls[0][1]["created_after"]) == NOW - 3600
    assert len(result.records) == 500 and all(r.outcome is Outcome.SUCCESS for r in result.records)


async def test_kapso_without_status_field_learns_it_from_the_status_filter(http_session, clock):
    clock.now = NOW
    statuses = ["ended", "failed", "handoff", "running", "waiting"]
    executions = [
        dict(kapso_execution(i, NOW - 100 - i, NOW - 10 if s in ("ended", "failed") else None), _status=s)
        for i, s in enumerate(statuses)
    ]
    upstream = Upstream(kapso_pages(executions, 100))
    h = Harness(make_source("kapso"), http_session, clock)
    with aioresponses() as m:
        m.get(Upstream.pattern(), callback=upstream, repeat=True)
        assert await h.poller.run_cycle()
        executions[3]["_status"] = "failed"
        executions[3]["ended_at"] = iso(NOW)
        clock.advance(30)
        assert await h.poller.run_cycle()
        assert h.value("agent_sessions_active", status="waiting") == 1
        assert h.value("agent_sessions_active", status="handoff") == 1
        executions[4]["_status"] = "ended"
        executions[4]["ended_at"] = iso(NOW + 30)
        executions[2]["_status"] = "ended"  # the human hands it back, and it ends
        executions[2]["ended_at"] = iso(NOW + 30)
        for _ in range(2):
            clock.advance(30)
            assert await h.poller.run_cycle()
    queried = [c[1].get("status") for c in upstream.calls]
    every = [None, "running", "waiting", "handoff", "ended", "failed"]
    # Status is learned while something is new or pending; then one unfiltered request suffices.
    assert queried == every * 3 + [None]
    assert h.finished(status="ended", outcome="success") == 3
    assert h.finished(status="failed", outcome="error") == 2
    assert h.finished() == 5
    for status in ("waiting", "running", "handoff"):
        assert h.value("agent_sessions_active", status=status) == 0


# --- Shared: bad items are skipped, the rest count ---------------------------------------------


async def test_bad_items_are_skipped_and_counted_while_the_rest_of_the_page_counts(http_session, clock):
    clock.now = NOW
    good = whatabot_item(1, started=NOW - 50)
    bad = [
        None,
        "text",
        {**whatabot_item(2), "id": None},
        {**whatabot_item(3), "startedAt": "yesterday"},
        {**whatabot_item(4), "status": 5},
        {**whatabot_item(5), "warnings": "many"},
    ]
    weird = whatabot_item(6, status="paused_by_admin", started=NOW - 40)
    weird["finishedAt"] = None
    finished_weird = {**whatabot_item(7, started=NOW - 30), "status": "archived"}
    h = Harness(make_source("whatabot"), http_session, clock)
    page = spring_page([good, *bad, weird, finished_weird], 0, 100, 9)
    with aioresponses() as m:
        m.get(Upstream.pattern(), callback=Upstream(lambda p, q: copy.deepcopy(page)), repeat=True)
        assert await h.poller.run_cycle()
        assert await h.poller.run_cycle()
    # The item with one bad figure ("warnings": "many") counts; only that figure is dropped, noted once.
    assert h.finished(status="completed") == 2
    assert h.value("agent_session_exporter_invalid_records_total", reason="bad_figure") == 1
    assert h.finished(status="archived", outcome="unknown") == 1
    assert h.value("agent_sessions_active", status="paused_by_admin") == 1
    # Items without an id are counted on every cycle that reads them; items with one, once.
    assert h.value("agent_session_exporter_invalid_records_total", reason="not_an_object") == 4
    assert h.value("agent_session_exporter_invalid_records_total", reason="missing_field") == 2
    assert h.value("agent_session_exporter_invalid_records_total", reason="bad_timestamp") == 1
    assert h.value("agent_session_exporter_invalid_records_total", reason="wrong_type") == 1
    assert h.value("agent_session_exporter_unknown_status_total", status="archived") == 1
    assert h.value("agent_session_exporter_unknown_status_total", status="paused_by_admin") == 1


async def test_a_page_failing_mid_pagination_leaves_the_state_untouched(http_session, clock):
    clock.now = NOW
    items = [whatabot_item(i, started=NOW - 10 - i) for i in range(150)]
    broken = {"page": True}

    def serve(path: str, params: dict[str, str]) -> Any:
        page, size = int(params["page"]), int(params["size"])
        if page == 1 and broken["page"]:
            return {"unexpected": "shape"}
        return spring_page(items[page * size : (page + 1) * size], page, size, len(items))

    h = Harness(make_source("whatabot"), http_session, clock)
    with aioresponses() as m:
        m.get(Upstream.pattern(), callback=Upstream(serve), repeat=True)
        assert not await h.poller.run_cycle()
        assert h.finished() == 0 and h.poller.state.watermark is None
        assert h.value("agent_session_exporter_source_up") == 0
        assert h.value("agent_session_exporter_invalid_records_total", reason="invalid_page") == 1
        broken["page"] = False
        clock.advance(30)
        assert await h.poller.run_cycle()
    assert h.finished() == 150 and h.value("agent_session_exporter_source_up") == 1


async def test_kapso_without_workflow_ids_discovers_workflows_and_drops_the_pending_of_a_removed_one(http_session, clock, logs):
    """GET /workflows (cursor pages) once per discovery_interval; a new workflow is polled from the
    next discovery; one missing from 3 listings in a row is polled no more, and its pending executions
    are dropped with a reason."""
    clock.now = NOW
    workflows = {"wf-a": "Support", "wf-b": "Sales"}
    executions = {"wf-a": [], "wf-b": []}
    listing_fails = {"now": False}

    def execution(workflow: str, n: int, ended: bool) -> dict[str, Any]:
        item = kapso_execution(n, NOW - 60 - n, NOW - 10 if ended else None, status="ended" if ended else "running")
        item["workflow"] = {"id": workflow, "name": workflows.get(workflow, "?"), "status": "active"}
        return item

    executions["wf-a"] = [execution("wf-a", 1, True), execution("wf-a", 2, False)]
    executions["wf-b"] = [execution("wf-b", 3, False)]

    def serve(path: str, params: dict[str, str]) -> Any:
        if path == "/workflows":
            if listing_fails["now"]:
                return CallbackResult(status=503, body="down")
            ids = list(workflows)
            start = int(params.get("after") or 0)
            more = start + 1 < len(ids)
            return {
                "data": [{"id": w, "name": workflows[w], "status": "active"} for w in ids[start : start + 1]],
                "paging": {"cursors": {"after": str(start + 1)}, "next": "/workflows?after=1" if more else None},
            }
        workflow = path.split("/")[2]
        return {"data": executions.get(workflow, []), "paging": {"cursors": {}, "next": None}}

    source = make_source("kapso", workflow_ids=None, discovery_interval="10m", max_workflows=5)
    assert source.workflow_ids is None
    upstream = Upstream(serve)
    h = Harness(source, http_session, clock)
    with aioresponses() as m:
        m.get(Upstream.pattern(), callback=upstream, repeat=True)
        assert await h.poller.run_cycle()
        assert [c[0] for c in upstream.calls] == [
            "/workflows",
            "/workflows",
            "/workflows/wf-a/executions",
            "/workflows/wf-b/executions",
        ]
        assert h.finished(workflow="wf-a") == 1 and h.value("agent_sessions_active", workflow="wf-b") == 1
        assert sum_samples(h.registry, "agent_session_workflow_info", workflow="wf-a", workflow_name="Support") == 1
        assert sum_samples(h.registry, "agent_session_workflow_info", workflow="wf-b", workflow_name="Sales") == 1

        # Within the interval no listing; past it, wf-b is gone and wf-c is new: wf-b is polled and its
        # execution kept through two more listings, and given up on at the third without it.
        upstream.calls.clear()
        clock.advance(60)
        assert await h.poller.run_cycle()
        assert "/workflows" not in [c[0] for c in upstream.calls]
        del workflows["wf-b"]
        workflows["wf-c"] = "Billing"
        executions["wf-c"] = [execution("wf-c", 4, True)]
        for _ in range(2):
            upstream.calls.clear()
            clock.advance(600)
            assert await h.poller.run_cycle()
            polled = [c[0] for c in upstream.calls if c[0] != "/workflows"]
            assert polled == ["/workflows/wf-a/executions", "/workflows/wf-c/executions", "/workflows/wf-b/executions"]
            assert h.value("agent_sessions_active", workflow="wf-b") == 1
        upstream.calls.clear()
        clock.advance(600)
        assert await h.poller.run_cycle()
        polled = [c[0] for c in upstream.calls if c[0] != "/workflows"]
        assert polled == ["/workflows/wf-a/executions", "/workflows/wf-c/executions"]
        assert h.value("agent_sessions_active", workflow="wf-b") == 0
        assert h.value("agent_session_exporter_pending_dropped_total", reason="workflow_removed") == 1
        assert h.finished(workflow="wf-c") == 1

        # A failed listing keeps the workflows found last.
        listing_fails["now"] = True
        clock.advance(600)
        upstream.calls.clear()
        assert await h.poller.run_cycle()
        assert [c[0] for c in upstream.calls if c[0] != "/workflows"] == polled
    assert any(line["msg"].startswith("workflow discovery failed") for line in logs("warning"))
