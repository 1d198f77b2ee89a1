"""The providers against payloads in the shapes the vendors' own code and specs produce
(shared/PROVIDERS.md, "Corrections and new facts"), beyond what their documentation pages show."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest
from aioresponses import aioresponses

from agent_session_exporter.model import Outcome, PendingRef, Phase, PollWindow
from agent_session_exporter.timeparse import parse_timestamp

from .helpers import Harness, Upstream, make_source
from .helpers import iso_ms as iso

NOW = 1_780_000_000.0


# --- Kapso: handoff is a pause; error_details; stale executions by the detail endpoint ----------


def kapso_execution(n: int, status: str, started: float = NOW - 100, ended: float | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "id": f"3c90c3cc-0d44-4b50-8888-{n:012d}",
        "status": status,
        "started_at": iso(started),
        "last_event_at": iso(started),
        "ended_at": None if ended is None else iso(ended),
        "tracking_id": "t",
        "workflow": {"id": "wf-a", "name": "Support", "status": "active"},
        "current_step": {"id": "c", "identifier": "handoff", "stepable_type": "HandoffNode"},
        **extra,
    }


async def test_kapso_handoff_is_active_and_the_execution_counts_once_when_it_ends(http_session, clock):
    clock.now = NOW
    executions = [kapso_execution(1, "handoff"), kapso_execution(2, "running", started=NOW - 90)]
    upstream = Upstream(lambda path, params: {"data": executions, "paging": {"cursors": {}, "next": None}})
    h = Harness(make_source("kapso"), http_session, clock)
    with aioresponses() as m:
        m.get(Upstream.pattern(), callback=upstream, repeat=True)
        assert await h.poller.run_cycle()
        assert h.finished() == 0
        assert h.value("agent_sessions_active", status="handoff") == 1
        # handoff -> running -> failed, and the other ends: each counts once, with its real outcome.
        executions[0] = kapso_execution(1, "running")
        clock.advance(30)
        assert await h.poller.run_cycle()
        executions[0] = kapso_execution(1, "failed", ended=NOW + 20, error_details={"message": "timed out"})
        executions[1] = kapso_execution(2, "ended", started=NOW - 90, ended=NOW + 25)
        for _ in range(3):
            clock.advance(30)
            assert await h.poller.run_cycle()
    assert h.finished(status="failed", outcome="error") == 1
    assert h.finished(status="ended", outcome="success") == 1
    assert h.finished() == 2
    assert h.value("agent_session_errors_total") == 1
    assert h.value("agent_sessions_active", status="handoff") == 0
    assert h.value("agent_session_duration_seconds_sum", outcome="error") == pytest.approx(120.0)
    # Executions carry status: one request per workflow per cycle, nothing else.
    assert [c[0] for c in upstream.calls] == ["/workflows/wf-a/executions"] * 5
    assert all("status" not in c[1] for c in upstream.calls)


async def test_kapso_error_details_make_an_ended_execution_count_as_an_error(http_session, clock):
    h = Harness(make_source("kapso"), http_session, clock)
    record = h.provider.parse_item(kapso_execution(1, "ended", ended=NOW, error_details="step 3 failed"))
    assert record is not None and record.outcome is Outcome.SUCCESS and record.counts_as_error
    assert not h.provider.parse_item(kapso_execution(2, "ended", ended=NOW, error_details=None)).counts_as_error


async def test_kapso_rechecks_stale_pending_executions_by_detail_with_the_id_escaped(http_session, clock):
    odd_id = "ex/../../admin?x=1"
    served = {"data": kapso_execution(1, "ended", started=NOW - 7200, ended=NOW - 10) | {"id": odd_id}}

    def serve(path: str, params: dict[str, str]) -> Any:
        if path.startswith("/workflow_executions/"):
            return served
        return {"data": [], "paging": {"cursors": {}}}

    upstream = Upstream(serve)
    h = Harness(make_source("kapso"), http_session, clock)
    with aioresponses() as m:
        m.get(Upstream.pattern(), callback=upstream, repeat=True)
        result = await h.provider.poll(PollWindow(since=NOW - 60, now=NOW, stale_pending=(PendingRef(odd_id, NOW - 7200),)))
    # The window is not widened back two hours; one detail request reads the execution.
    assert upstream.calls[0][1]["created_after"].startswith(iso(NOW - 60)[:19])
    detail = [c for c in upstream.calls if c[0].startswith("/workflow_executions/")]
    assert len(detail) == 1
    assert [r.session_id for r in result.records] == [odd_id] and result.records[0].phase is Phase.FINISHED


# --- Dify: stop reasons, rows without a run, suspended, RFC 822 dates ----------------------------


def dify_row(n: int, status: str, error: str | None = None, run: bool = True) -> dict[str, Any]:
    created = int(NOW) - 100 + n
    return {
        "id": f"log-{n}",
        "created_at": created,
        "created_from": "service-api",
        "workflow_run": None
        if not run
        else {
            "id": f"run-{n}",
            "status": status,
            "error": error,
            "elapsed_time": 1.5,
            "total_tokens": 10,
            "created_at": created,
            "finished_at": None if status in ("running", "paused", "suspended") else created + 2,
            "exceptions_count": 0,
        },
    }


async def test_dify_stopped_runs_are_cancelled_and_never_errors(http_session, clock, logs):
    clock.now = NOW
    rows = [
        dify_row(1, "stopped", "Stopped by user."),
        dify_row(2, "stopped", "Stopped by output moderation."),
        dify_row(3, "failed", "Node LLM run failed"),
        dify_row(4, "succeeded"),
        dify_row(5, "partial-succeeded", "a handled node error"),
        dify_row(6, "suspended"),
        dify_row(7, "succeeded", run=False),
    ]
    upstream = Upstream(lambda path, params: {"data": rows, "has_more": False, "page": 1, "limit": 100})
    h = Harness(make_source("dify"), http_session, clock)
    with aioresponses() as m:
        m.get(Upstream.pattern(), callback=upstream, repeat=True)
        for _ in range(2):
            assert await h.poller.run_cycle()
            clock.advance(30)
    assert h.finished(status="stopped", outcome="cancelled") == 2
    # A failed run, and a successful one that carries an error text; never a stop reason.
    assert h.value("agent_session_errors_total") == 2
    assert h.value("agent_sessions_active", status="suspended") == 1
    assert h.finished() == 5
    # The row without a run is no invalid record and no warning, on any cycle.
    assert h.value("agent_session_exporter_invalid_records_total", reason="missing_field") == 0
    assert [line["msg"] for line in logs()].count("cycle done") == 2  # the log was written to, twice
    assert not logs("warning")


# --- Syntropic137: orphaned sessions have no duration -----------------------------------------


async def test_syntropic_orphaned_session_counts_without_an_invented_duration(http_session, clock):
    clock.now = NOW
    orphan = {
        "id": "s-1",
        "status": "failed",
        "started_at": "2026-05-28 19:00:00.123456+00:00",
        "completed_at": "2026-05-28 20:26:00+00:00",
        "duration_seconds": None,
        "error_message": "Orphaned: framework restarted while agent was active",
        "total_cost_usd": "1.5E-7",
        "input_tokens": 3,
        "output_tokens": 4,
    }
    upstream = Upstream(lambda path, params: {"sessions": [orphan], "total": 1})
    h = Harness(make_source("syntropic137", initial_lookback="3h"), http_session, clock)
    with aioresponses() as m:
        m.get(Upstream.pattern(), callback=upstream, repeat=True)
        assert await h.poller.run_cycle()
    assert h.finished(status="failed", outcome="error") == 1
    assert h.value("agent_session_duration_seconds_count", outcome="error") == 0
    assert h.value("agent_session_cost_usd_total", model="unknown") == pytest.approx(1.5e-7)


# --- HoneyHive: the events API ---------------------------------------------------------------


def hh_event(
    n: int, event_type: str = "session", start: float = NOW - 600, end: float | None = NOW - 500, error: str | None = None
) -> dict[str, Any]:
    return {
        "event_id": f"ev-{event_type}-{n}",
        "session_id": f"sess-{n}",
        "event_type": event_type,
        "event_name": event_type,
        "start_time": int(start * 1000),
        "end_time": None if end is None else int(end * 1000),
        "duration": None if end is None else (end - start) * 1000 + 0.8056,
        "error": error,
        "metadata": {"cost": 0.25, "total_tokens": 30, "prompt_tokens": 20, "completion_tokens": 10},
        "parent_id": None if event_type == "session" else f"sess-{n}",
    }


async def test_honeyhive_events_api_posts_the_documented_query_and_counts_only_sessions(http_session, clock):
    clock.now = NOW
    events = []
    for n in range(5):
        events += [hh_event(n, error="boom" if n == 0 else None), hh_event(n, "model"), hh_event(n, "tool", error="x")]

    def serve(path: str, params: dict[str, Any]) -> Any:
        page, limit = params["page"], params["limit"]
        return {"events": events[(page - 1) * limit : page * limit], "totalEvents": len(events)}

    upstream = Upstream(serve)
    h = Harness(make_source("honeyhive", api="events", page_size=4, settle_after="10s"), http_session, clock)
    with aioresponses() as m:
        m.post(Upstream.pattern(), callback=upstream, repeat=True)
        assert await h.poller.run_cycle()
        clock.advance(20)
        assert await h.poller.run_cycle()
    # 15 events at 4 a page: pages 1..4 each cycle, the last one short.
    assert [b["page"] for b in upstream.bodies] == [1, 2, 3, 4] * 2
    body = upstream.bodies[0]
    assert upstream.calls[0][0] == "/v1/events/export"
    assert body["project"] == "proj" and body["limit"] == 4
    assert body["filters"] == [{"field": "event_type", "operator": "is", "value": "session", "type": "string"}]
    assert set(body["dateRange"]) == {"$gte", "$lte"} and body["dateRange"]["$gte"] < iso(NOW)
    assert h.finished() == 5 and h.finished(outcome="error") == 1
    assert h.value("agent_session_errors_total") == 1
    assert h.value("agent_session_tokens_total", token_type="input") == 100
    assert h.value("agent_session_duration_seconds_sum", outcome="success") == pytest.approx(4 * 100.0008, rel=1e-4)


async def test_honeyhive_events_paging_ends_on_a_short_page_never_on_a_low_total(http_session, clock):
    """A full page never ends paging, whatever ``totalEvents`` says: trusting ``page × limit ≥ totalEvents``
    read two pages of four and counted 8 of 23 sessions when the total said 5."""
    clock.now = NOW
    events = [hh_event(n, start=NOW - 600 - n) for n in range(23)]
    upstream = Upstream(lambda path, params: {"events": events[(params["page"] - 1) * 4 : params["page"] * 4], "totalEvents": 5})
    h = Harness(make_source("honeyhive", api="events", page_size=4, settle_after=0), http_session, clock)
    with aioresponses() as m:
        m.post(Upstream.pattern(), callback=upstream, repeat=True)
        assert await h.poller.run_cycle()
    assert [b["page"] for b in upstream.bodies] == [1, 2, 3, 4, 5, 6] and h.finished() == 23


async def test_honeyhive_sessions_api_answering_404_says_to_set_api_search(http_session, clock, logs):
    h = Harness(make_source("honeyhive", api="sessions"), http_session, clock)
    with aioresponses() as m:
        m.get(Upstream.pattern(), status=404, payload={"message": "Not Found"}, repeat=True)
        assert not await h.poller.run_cycle()
    assert "set 'api: search'" in h.poller.last_result
    assert [
        "set 'api: search'" in line.get("error", "") for line in logs("warning") if line["msg"] == "upstream request failed"
    ] == [True]


# --- Order assumptions are verified, never trusted -------------------------------------------


def whatabot_item(n: int, started: float) -> dict[str, Any]:
    return {"id": f"wb-{n}", "status": "completed", "warnings": 0, "startedAt": iso(started), "finishedAt": iso(started + 5)}


async def test_whatabot_that_ignores_order_by_is_read_whole_and_counts_everything(http_session, clock, logs):
    """300 finished sessions served oldest first whatever orderBy says, with an overlap far shorter
    than the traffic: trusting the order counted 100 of 300."""
    clock.now = NOW
    items = [whatabot_item(n, NOW - 3000 + 10 * n) for n in range(300)]  # oldest first

    def serve(path: str, params: dict[str, str]) -> Any:
        page, size = int(params["page"]), int(params["size"])
        chunk = items[page * size : (page + 1) * size]
        return {"content": chunk, "number": page, "totalPages": 3, "last": page >= 2}

    upstream = Upstream(serve)
    h = Harness(make_source("whatabot", overlap="1m", initial_lookback="1h"), http_session, clock)
    with aioresponses() as m:
        m.get(Upstream.pattern(), callback=upstream, repeat=True)
        for _ in range(3):
            assert await h.poller.run_cycle()
            clock.advance(30)
    assert h.finished() == 300
    assert h.value("agent_session_exporter_upstream_order_ok") == 0
    assert [e["parameter"] for e in logs("error")] == ["orderBy"]  # one line, not one per cycle


async def test_whatabot_in_order_keeps_the_early_stop_and_the_gauge_at_one(http_session, clock):
    clock.now = NOW
    items = [whatabot_item(n, NOW - 10 * n) for n in range(300)]  # newest first, as asked

    def serve(path: str, params: dict[str, str]) -> Any:
        page, size = int(params["page"]), int(params["size"])
        return {"content": items[page * size : (page + 1) * size], "number": page, "totalPages": 3, "last": page >= 2}

    upstream = Upstream(serve)
    h = Harness(make_source("whatabot", overlap="1m", initial_lookback="10m"), http_session, clock)
    with aioresponses() as m:
        m.get(Upstream.pattern(), callback=upstream, repeat=True)
        assert await h.poller.run_cycle()
    assert len(upstream.calls) == 1  # 100 items reach back 1000 s, past the 600 s lookback
    assert h.value("agent_session_exporter_upstream_order_ok") == 1


async def test_syntropic_full_pages_out_of_order_are_split_until_every_session_is_read(http_session, clock):
    clock.now = NOW
    sessions = [
        {
            "id": f"s-{n}",
            "status": "completed",
            "started_at": str(datetime.fromtimestamp(NOW - 1000 + n, timezone.utc)),
            "completed_at": str(datetime.fromtimestamp(NOW - 900 + n, timezone.utc)),
            "duration_seconds": 100.0,
        }
        for n in range(450)
    ]  # oldest first, though the API promises newest first

    def serve(path: str, params: dict[str, str]) -> Any:
        from agent_session_exporter.timeparse import parse_timestamp

        low = parse_timestamp(params.get("started_after"))
        high = parse_timestamp(params.get("started_before"))
        chosen = [
            s
            for s in sessions
            if (low is None or parse_timestamp(s["started_at"]) >= low)
            and (high is None or parse_timestamp(s["started_at"]) <= high)
        ]
        return {"sessions": chosen[: int(params["limit"])], "total": min(len(chosen), int(params["limit"]))}

    upstream = Upstream(serve)
    h = Harness(make_source("syntropic137", initial_lookback="1h"), http_session, clock)
    with aioresponses() as m:
        m.get(Upstream.pattern(), callback=upstream, repeat=True)
        assert await h.poller.run_cycle()
    assert h.finished() == 450
    assert h.value("agent_session_exporter_upstream_order_ok") == 0
    assert len(upstream.calls) < 20


async def test_sessions_added_between_pages_are_no_order_violation(http_session, clock):
    """Offset pages of a list that grows at the top repeat their neighbour's last items: those
    repeats are newer than the previous page's end, and must not be taken for a broken order."""
    clock.now = NOW
    listing = [whatabot_item(n, NOW - 100 - n) for n in range(250)]  # newest first

    def serve(path: str, params: dict[str, str]) -> Any:
        page, size = int(params["page"]), int(params["size"])
        if page == 1:  # three sessions start while page 0 is being read
            listing[:0] = [whatabot_item(1000 + n, NOW - 1 - n) for n in range(3)]
        return {"content": listing[page * size : (page + 1) * size], "number": page, "totalPages": 3, "last": page >= 2}

    h = Harness(make_source("whatabot", initial_lookback="1h"), http_session, clock)
    with aioresponses() as m:
        m.get(Upstream.pattern(), callback=Upstream(serve), repeat=True)
        assert await h.poller.run_cycle()
    assert h.value("agent_session_exporter_upstream_order_ok") == 1
    assert h.provider.trust_order


async def test_dify_run_logged_in_the_same_second_as_the_newest_counts_on_the_next_steady_cycle(http_session, clock):
    """Dify's created_at has one-second resolution: a steady read starts at the newest second seen,
    inclusive, or a run logged later in that second would wait for the sweep."""
    clock.now = NOW
    second = int(NOW) - 5
    rows = [dify_row(1, "succeeded") | {"created_at": second}]
    rows[0]["workflow_run"]["created_at"] = second
    for n in range(3, 253):  # older runs inside the overlap: a sweep would cost more than the steady read
        rows.append(dify_row(n, "succeeded") | {"created_at": second - n})
        rows[-1]["workflow_run"]["created_at"] = second - n

    def serve(path: str, params: dict[str, str]) -> Any:
        after = parse_timestamp(params["created_at__after"])
        chosen = [r for r in rows if r["created_at"] >= after]
        page, limit = int(params.get("page", 1)), int(params["limit"])
        return {
            "data": chosen[(page - 1) * limit : page * limit],
            "has_more": len(chosen) > page * limit,
            "page": page,
            "limit": limit,
            "total": len(chosen),
        }

    h = Harness(make_source("dify", overlap="10m"), http_session, clock)
    with aioresponses() as m:
        m.get(Upstream.pattern(), callback=Upstream(serve), repeat=True)
        assert await h.poller.run_cycle()  # the first cycle sweeps
        late = dify_row(2, "failed", "boom") | {"created_at": second}
        late["workflow_run"]["created_at"] = second
        rows.insert(0, late)
        clock.advance(30)
        assert await h.poller.run_cycle()  # steady, 30 s into a 10 min overlap: no sweep yet
    assert h.value("agent_session_exporter_sweeps_total") == 1
    assert h.finished() == 252 and h.finished(status="failed") == 1
