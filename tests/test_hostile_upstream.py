"""Hostile upstream data (issue #10, defects 1-8): each case breaks one session or one figure at
most, never a source, and never a counter."""

from __future__ import annotations

import asyncio
import math
from datetime import datetime, timezone
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aioresponses import CallbackResult, aioresponses
from prometheus_client import generate_latest

from agent_session_exporter.app import Exporter
from agent_session_exporter.count.state import PendingSession
from agent_session_exporter.demo.runner import DEMO_SOURCES, demo_config, running_simulators
from agent_session_exporter.demo.server import Simulators
from agent_session_exporter.keep.sqlite import SqliteStore
from agent_session_exporter.model import PendingRef, PollWindow

from .helpers import Harness, Upstream, check_exposition, make_source, parse_exposition, total_of
from .helpers import spring_page as spring

NOW = 1_780_000_000.0


def text(ts: float) -> str:
    return str(datetime.fromtimestamp(ts, timezone.utc))


def syntropic(sid: str, started: float, status: str = "completed", **extra: Any) -> dict[str, Any]:
    return {
        "id": sid,
        "status": status,
        "started_at": text(started),
        "completed_at": None if status == "running" else text(started + 5),
        "duration_seconds": None if status == "running" else 5.0,
        "total_cost_usd": "0.5",
        "input_tokens": 10,
        "output_tokens": 5,
        **extra,
    }


class StatusUpstream(Upstream):
    """An Upstream whose ``serve`` may answer an int: that HTTP status, with an error body."""

    def __call__(self, url: Any, **kwargs: Any) -> CallbackResult:
        result = super().__call__(url, **kwargs)
        if isinstance(result.payload, int):
            return CallbackResult(status=result.payload, payload={"detail": "boom"})
        return result


def syntropic_upstream(listed: list[dict[str, Any]], details: dict[str, Any]) -> Upstream:
    """The list serves ``listed``; a detail path answers ``details[id]`` (a dict, or an HTTP status)."""

    def serve(path: str, params: dict[str, str]) -> Any:
        if path == "/sessions":
            return {"sessions": listed, "total": len(listed)}
        return details[path.removeprefix("/sessions/")]

    return StatusUpstream(serve)


# 1 -------------------------------------------------------------------------------------------


async def test_a_pending_session_whose_lookup_fails_holds_up_nothing_and_expires_with_a_reason(http_session, clock):
    clock.now = NOW
    long_id = "x" * 256  # the longest id taken (safetext.MAX_ID_BYTES)
    listed = [syntropic("old-1", NOW - 7000, "running"), syntropic(long_id, NOW - 6990, "running")]
    details: dict[str, Any] = {"old-1": 500, long_id: 400}
    upstream = syntropic_upstream(listed, details)
    h = Harness(
        make_source("syntropic137", overlap="1m", max_pending_age="3h", initial_lookback="3h", retries=0), http_session, clock
    )
    with aioresponses() as m:
        m.get(Upstream.pattern(), callback=upstream, repeat=True)
        assert await h.poller.run_cycle()
        assert h.value("agent_session_exporter_pending_sessions") == 2
        for n in range(10):  # busy traffic keeps being counted while the two old lookups keep failing
            clock.advance(60)
            listed[:] = [syntropic(f"new-{n}-{k}", clock.now - 59 + k * 0.4) for k in range(150)]
            assert await h.poller.run_cycle()
        assert h.finished() == 1500
        looked_up = [path for path in upstream.raw_paths if path != "/sessions"]
        assert len(looked_up) >= 18  # the two old sessions, looked up each cycle (reading back is dearer)
        clock.advance(3 * 3600)
        listed[:] = []
        assert await h.poller.run_cycle()
    assert h.value("agent_session_exporter_pending_dropped_total", reason="unreadable") == 2
    assert h.value("agent_session_exporter_pending_sessions") == 0


async def test_pending_sessions_expire_even_while_every_poll_fails(http_session, clock):
    clock.now = NOW
    h = Harness(make_source("syntropic137", max_pending_age="1h", retries=0), http_session, clock)
    with aioresponses() as m:
        m.get(Upstream.pattern(), callback=Upstream(lambda p, q: {"sessions": [syntropic("s", NOW - 5, "running")]}))
        assert await h.poller.run_cycle()
        m.get(Upstream.pattern(), status=503, repeat=True)
        clock.advance(3700)
        assert not await h.poller.run_cycle()
    assert h.value("agent_session_exporter_pending_dropped_total", reason="unreadable") == 1
    assert h.value("agent_session_exporter_pending_sessions") == 0
    assert h.value("agent_session_exporter_source_up") == 0


# 2, 3, 4 -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        {"total_cost_usd": "sNaN"},
        {"total_cost_usd": "NaN"},
        {"total_cost_usd": "1e400"},
        {"total_cost_usd": 1e308},
        {"input_tokens": -5},
        {"input_tokens": "1e400"},
        {"duration_seconds": "1e400"},
        {"duration_seconds": "Infinity"},
        {"output_tokens": 10**400},
        {"total_cost_usd": True},
        {"total_cost_usd": [1]},
    ],
)
async def test_a_bad_figure_drops_that_figure_only_and_counts_once(http_session, clock, bad):
    clock.now = NOW
    listed = [syntropic("s-1", NOW - 50, **bad), syntropic("s-2", NOW - 40, total_cost_usd=1e308)]
    h = Harness(make_source("syntropic137"), http_session, clock)
    with aioresponses() as m:
        m.get(Upstream.pattern(), callback=Upstream(lambda p, q: {"sessions": listed}), repeat=True)
        for _ in range(3):
            assert await h.poller.run_cycle()
            clock.advance(30)
    assert h.finished() == 2
    assert h.value("agent_session_exporter_invalid_records_total", reason="bad_figure") == 2
    for family in h.registry.collect():
        for sample in family.samples:
            assert math.isfinite(sample.value), sample


async def test_non_finite_totals_in_an_old_state_file_are_not_restored(tmp_path, http_session, clock):
    store = SqliteStore(str(tmp_path / "s.db"), {"syntropic137-src": "syntropic137"})
    store.db.execute(
        "INSERT INTO sources VALUES ('syntropic137-src', 'syntropic137', NULL, NULL, ?)",
        (
            '{"finished":[["completed","success",3]],"duration_buckets":{},"duration_sum":{},'
            '"bounds":[],"warnings":0,"errors":0,"tokens":{"input":Infinity},"cost":{"m":NaN}}',
        ),
    )
    h = Harness(make_source("syntropic137"), http_session, clock, store=store)
    assert h.finished() == 3
    for family in h.registry.collect():
        for sample in family.samples:
            assert math.isfinite(sample.value), sample


# 5 -------------------------------------------------------------------------------------------


async def test_microsecond_times_are_read_as_such_and_far_future_key_times_are_refused(http_session, clock):
    clock.now = NOW
    h = Harness(make_source("honeyhive", settle_after=0), http_session, clock)
    sessions = [
        {"session_id": "us", "start_time": int((NOW - 60) * 1e6), "end_time": int((NOW - 30) * 1e6)},
        {"session_id": "future", "start_time": int((NOW + 10 * 86400) * 1000), "end_time": None},
    ]
    with aioresponses() as m:
        m.post(Upstream.pattern(), callback=Upstream(lambda p, q: {"events": sessions, "count": 2}), repeat=True)
        for _ in range(2):
            assert await h.poller.run_cycle()
            clock.advance(5)
    assert h.finished() == 1
    assert h.value("agent_session_duration_seconds_sum", outcome="success") == pytest.approx(30.0)
    assert h.value("agent_session_exporter_invalid_records_total", reason="future_timestamp") == 1
    assert h.poller.state.watermark <= clock.now and not h.poller.state.pending


async def test_pending_sessions_expire_by_when_they_were_first_seen_too(http_session, clock):
    clock.now = NOW
    h = Harness(make_source("syntropic137", max_pending_age="1h"), http_session, clock)
    listed = [syntropic("s", NOW + 3000, "running")]  # a start an hour ahead (a skewed clock), within bounds
    with aioresponses() as m:
        m.get(Upstream.pattern(), callback=Upstream(lambda p, q: {"sessions": listed}), repeat=True)
        assert await h.poller.run_cycle()
        assert h.value("agent_session_exporter_pending_sessions") == 1
        clock.advance(3601)
        assert await h.poller.run_cycle()
    assert h.value("agent_session_exporter_pending_dropped_total", reason="max_pending_age") == 1


# 6 -------------------------------------------------------------------------------------------


async def test_a_page_of_many_empty_items_costs_one_line_per_reason_and_is_capped(http_session, clock, logs):
    clock.now = NOW
    page = {"content": [{}] * 10_000, "last": True}  # (aioresponses cannot mock a much larger body)
    h = Harness(make_source("whatabot", page_size=50), http_session, clock)
    with aioresponses() as m:
        m.get(Upstream.pattern(), callback=Upstream(lambda p, q: page), repeat=True)
        assert await h.poller.run_cycle()
    assert h.value("agent_session_exporter_invalid_records_total", reason="missing_field") == 50
    assert h.value("agent_session_exporter_invalid_records_total", reason="oversized_page") == 1
    assert len([line for line in logs("warning") if line["msg"] == "invalid upstream items skipped"]) == 2


# 7 -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "sid, wire",
    [("../../admin", "/sessions/..%2F..%2Fadmin"), ("abc?x=1", "/sessions/abc%3Fx=1"), ("a b#c", "/sessions/a%20b%23c")],
)
async def test_ids_are_percent_encoded_in_detail_paths(http_session, clock, sid, wire):
    upstream = syntropic_upstream([], {sid: syntropic(sid, NOW - 7200)})
    h = Harness(make_source("syntropic137"), http_session, clock)
    with aioresponses() as m:
        m.get(Upstream.pattern(), callback=upstream, repeat=True)
        result = await h.provider.poll(PollWindow(since=NOW - 60, now=NOW, stale_pending=(PendingRef(sid, NOW - 7200),)))
    assert upstream.raw_paths[-1] == wire
    assert [r.session_id for r in result.records] == [sid] and not result.gone


# 8 -------------------------------------------------------------------------------------------


async def test_a_looping_upstream_costs_one_request_budget_per_cycle(http_session, clock):
    counter = {"n": 0}

    def serve(path: str, params: dict[str, str]) -> Any:
        counter["n"] += 1  # always one more page, always a new cursor
        return {"data": [], "paging": {"cursors": {"after": f"c{counter['n']}"}, "next": "more"}} | {
            "data": [{"id": f"e{counter['n']}", "status": "running", "started_at": "2026-05-28T20:00:00Z"}]
        }

    upstream = Upstream(serve)
    h = Harness(make_source("kapso", max_requests_per_cycle=40), http_session, clock)
    with aioresponses() as m:
        m.get(Upstream.pattern(), callback=upstream, repeat=True)
        assert not await h.poller.run_cycle()
    assert len(upstream.calls) == 40
    assert h.value("agent_session_exporter_cycle_limit_reached_total", limit="requests") == 1


async def test_stale_pending_lookups_are_capped_per_cycle_and_take_turns(http_session, clock):
    clock.now = NOW
    running = [syntropic(f"p-{n}", NOW - 7000 + n * 0.01, "running") for n in range(40)]
    listed = list(running)
    upstream = syntropic_upstream(listed, {s["id"]: s for s in running})
    h = Harness(make_source("syntropic137", overlap="1m", initial_lookback="3h", max_pending_checks=15), http_session, clock)
    with aioresponses() as m:
        m.get(Upstream.pattern(), callback=upstream, repeat=True)
        assert await h.poller.run_cycle()
        looked_up: list[str] = []
        for n in range(6):  # busy traffic: reading two hours back would cost far more than lookups
            clock.advance(60)
            listed[:] = [syntropic(f"new-{n}-{k}", clock.now - 59 + k * 0.4) for k in range(150)]
            before = len(upstream.calls)
            assert await h.poller.run_cycle()
            cycle = [c[0] for c in upstream.calls[before:] if c[0] != "/sessions"]
            assert len(cycle) <= 15
            looked_up += cycle
    assert len(set(looked_up)) == 40  # every pending session had its turn
    # The lookups' cost is visible apart from the list reads.
    assert h.value("agent_session_exporter_cycle_requests_total", kind="lookup") == len(looked_up)
    assert h.value("agent_session_exporter_cycle_requests_total") == len(upstream.calls)


async def test_a_cycle_past_its_deadline_is_abandoned(http_session, clock):
    pages = {"n": 0}

    async def slow(url: Any, **kwargs: Any) -> CallbackResult:
        await asyncio.sleep(0.2)
        pages["n"] += 1
        item = {"id": f"s{pages['n']}", "status": "running", "startedAt": "2026-05-28T20:26:00Z"}
        return CallbackResult(payload={"content": [item], "last": False, "number": 0, "totalPages": 10**6})

    h = Harness(make_source("whatabot", cycle_timeout="1s", max_pages=10**6), http_session, clock)
    with aioresponses() as m:
        m.get(Upstream.pattern(), callback=slow, repeat=True)
        assert not await h.poller.run_cycle()
    assert h.value("agent_session_exporter_cycle_limit_reached_total", limit="deadline") == 1


# Hostile strings (issue rows 1 and 2) ---------------------------------------------------------


async def test_a_lone_surrogate_in_a_label_value_is_replaced_and_counted(http_session, clock):
    """orjson refuses a lone surrogate escape, the stdlib decoder takes it: as a label value it
    made every render fail (UnicodeEncodeError, a 500 on every scrape)."""
    clock.now = NOW
    listed = [
        syntropic("s-1", NOW - 50, "compl\ud800eted", agent_model="m\udfff", workflow_id="wf\ud800", workflow_name="name\ud800"),
        syntropic("s-2", NOW - 40),
        syntropic("s-3", NOW - 30, "failed", error_message="boom\ud800"),
    ]
    h = Harness(make_source("syntropic137"), http_session, clock)
    with aioresponses() as m:
        m.get(Upstream.pattern(), callback=Upstream(lambda p, q: {"sessions": listed}), repeat=True)
        for _ in range(2):
            assert await h.poller.run_cycle()
            clock.advance(30)
    families = check_exposition(generate_latest(h.registry), openmetrics=False)

    def labels(metric: str, name: str) -> set[str]:
        return {s.labels[name] for f in families for s in f.samples if s.name == metric}

    assert labels("agent_sessions_finished_total", "status") == {"compl\ufffdeted", "completed", "failed"}
    assert labels("agent_session_cost_usd_total", "model") == {"m\ufffd", "unknown"}
    assert labels("agent_session_workflow_info", "workflow_name") == {"name\ufffd"}
    assert h.finished() == 3
    for field in ("status", "model", "workflow", "workflow_name", "error_message"):
        assert h.value("agent_session_exporter_sanitized_values_total", field=field) == 1, field
    assert [r.error_message for r in h.poller.recent_failures] == ["boom\ufffd"]


async def test_an_id_that_is_not_utf8_is_refused_and_the_source_keeps_committing(tmp_path, http_session, clock):
    """A lone surrogate in a session id could not be written to SQLite: every commit failed and the
    source stopped counting for good."""
    clock.now = NOW
    listed = [
        syntropic("bad-\ud800", NOW - 50),
        syntropic("x" * 257, NOW - 45),
        syntropic("é" * 128, NOW - 42),
        syntropic("s-2", NOW - 40),
    ]
    store = SqliteStore(str(tmp_path / "s.db"), {"syntropic137-src": "syntropic137"})
    h = Harness(make_source("syntropic137"), http_session, clock, store=store)
    with aioresponses() as m:
        m.get(Upstream.pattern(), callback=Upstream(lambda p, q: {"sessions": listed}), repeat=True)
        for _ in range(3):
            assert await h.poller.run_cycle()
            clock.advance(30)
    assert h.finished() == 2 and set(store.load("syntropic137-src").counted) == {"é" * 128, "s-2"}
    assert h.value("agent_session_exporter_invalid_records_total", reason="id_not_utf8") == 1
    assert h.value("agent_session_exporter_invalid_records_total", reason="id_too_long") == 1


# Assumptions about an upstream are re-verified, not latched (issue #24) ------------------------


async def test_an_upstream_clock_two_hours_ahead_costs_one_request_per_idle_cycle_and_keeps_the_window_small(clock):
    """Issue #24 row 7: key times ahead of the exporter's clock (within the one bound) are taken, and
    the watermark follows them; capped at now, every steady read re-read the two hours ahead of it
    (19 requests a cycle for Syntropic137) and every id since was tracked (3,600 instead of 61)."""
    simulators = Simulators(clock=lambda: clock.now + 7200, rate=0.5, retention=None)
    simulators.backfill(2.5 * 3600)  # all of it ahead of the exporter's clock but the first half hour
    async with running_simulators(simulators, tick_every=None) as base_url:
        exporter = Exporter(demo_config(base_url, listen="127.0.0.1:0"), clock=clock)
        await exporter.open()
        try:
            await exporter.run_once()
            for factory in simulators.factories.values():
                factory.rate = 0  # nothing new upstream from here on
            simulators.finish_all()
            for _ in range(3):
                clock.advance(15)
                await exporter.run_once()
            simulators.requests.clear()
            cycles = 5
            for _ in range(cycles):
                clock.advance(15)
                assert all((await exporter.run_once()).values())
            samples = parse_exposition(exporter.render_metrics().decode())
            overlaps = {name: poller.source.overlap for name, poller in exporter.pollers.items()}
        finally:
            await exporter.close()
    per_cycle = {provider: count / cycles for provider, count in simulators.requests.items()}
    assert per_cycle == {
        "whatabot": 1,
        "dify": 1,
        "syntropic137": 1,
        "honeyhive": 3,
        "kapso": 2,
        "n8n": 3,
    }  # 3 HoneyHive sources; n8n: the list, status=running, status=waiting
    for source, provider in DEMO_SOURCES.items():
        # The ids of about two overlaps at 0.5 sessions/s (61 with a minute's), not the two hours ahead.
        if source == "demo-honeyhive-sessions":  # GET /session (deprecated) lists its newest 1,000 only
            continue
        tracked = total_of(samples, "agent_session_exporter_tracked_session_ids", source=source)
        assert tracked <= 0.5 * (2 * overlaps[source] + 15) + 1, source
        assert total_of(samples, "agent_sessions_finished_total", source=source) == sum(
            simulators.factories[provider].truth.finished.values()
        ), source
    assert total_of(samples, "agent_session_exporter_invalid_records_total", reason="future_timestamp") == 0


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


async def test_one_whatabot_answer_out_of_order_costs_a_whole_window_read_for_ten_minutes_not_forever(http_session, clock, logs):
    """Issue #24 row 8: one swapped pair of rows on one page made every later cycle read the whole list
    (30 requests instead of 1, forever). The order is tried again once per max(overlap, 10 minutes),
    and trusted again once a read shows it kept; the gauge and the log say so each way."""
    clock.now = NOW
    items = [
        {
            "id": f"wb-{n}",
            "status": "completed",
            "warnings": 0,
            "startedAt": iso(NOW - 60 * n),
            "finishedAt": iso(NOW - 60 * n + 5),
        }
        for n in range(1, 3001)
    ]  # 50 hours, newest first
    swapped = {"once": True}

    def serve(path: str, params: dict[str, str]) -> Any:
        page, size = int(params["page"]), int(params["size"])
        chunk = items[page * size : (page + 1) * size]
        if swapped["once"] and page == 0:
            swapped["once"] = False
            chunk = [chunk[1], chunk[0], *chunk[2:]]
        return spring(chunk, page, size, len(items))

    upstream = Upstream(serve)
    h = Harness(make_source("whatabot", overlap="1m", initial_lookback="1h"), http_session, clock)
    costs, gauge = [], []
    with aioresponses() as m:
        m.get(Upstream.pattern(), callback=upstream, repeat=True)
        for _ in range(30):  # 15 minutes at a 30 s interval, one new session each
            before = len(upstream.calls)
            assert await h.poller.run_cycle()
            costs.append(len(upstream.calls) - before)
            gauge.append(h.value("agent_session_exporter_upstream_order_ok"))
            clock.advance(30)
            items.insert(
                0,
                {
                    "id": f"wb-new-{len(costs)}",
                    "status": "completed",
                    "warnings": 0,
                    "startedAt": iso(clock.now - 1),
                    "finishedAt": iso(clock.now),
                },
            )
    assert min(costs[:20]) >= 30  # the whole list, 30 pages: whole-window reads meanwhile
    assert gauge[:20] == [0] * 20  # tried again at the cycle ten minutes after the break, ...
    assert max(costs[-8:]) <= 3 and gauge[-1] == 1  # ... where the order held: one page a cycle (and probes)
    assert h.finished() == 60 + 29  # the hour's sessions, and every new one but the last, not read yet
    assert [line["parameter"] for line in logs("error")] == ["orderBy"]
    assert [line["msg"] for line in logs("info") if "order" in line["msg"]] == [
        "the API keeps the order the exporter asks for again; reading newest first as planned"
    ]


async def test_one_kapso_page_without_status_costs_a_query_per_status_for_ten_minutes_not_forever(http_session, clock, logs):
    """Issue #24 row 8: one page whose executions lacked ``status`` made every later cycle with anything
    new query once per status (6 requests instead of 1, forever). The status field is tried again once
    per max(overlap, 10 minutes) and trusted again once every execution carries it."""
    clock.now = NOW
    executions = [{"id": "ex-0", "status": "ended", "started_at": iso(NOW - 100), "ended_at": iso(NOW - 50)}]
    bare = {"once": True}

    def serve(path: str, params: dict[str, str]) -> Any:
        after = datetime.fromisoformat(params["created_after"].replace("Z", "+00:00")).timestamp()
        chosen = [
            e
            for e in executions
            if datetime.fromisoformat(e["started_at"].replace("Z", "+00:00")).timestamp() >= after
            and params.get("status") in (None, e["status"])
        ]
        if bare["once"]:
            bare["once"] = False
            chosen = [{k: v for k, v in e.items() if k != "status"} for e in chosen]
        return {"data": chosen, "paging": {"cursors": {}, "next": None}}

    upstream = Upstream(serve)
    h = Harness(make_source("kapso", overlap="1m", initial_lookback="1h"), http_session, clock)
    costs = []
    with aioresponses() as m:
        m.get(Upstream.pattern(), callback=upstream, repeat=True)
        for n in range(1, 31):  # 15 minutes at a 30 s interval, one new execution each
            before = len(upstream.calls)
            assert await h.poller.run_cycle()
            costs.append(len(upstream.calls) - before)
            clock.advance(30)
            executions.insert(
                0, {"id": f"ex-{n}", "status": "ended", "started_at": iso(clock.now - 2), "ended_at": iso(clock.now - 1)}
            )
    assert costs[:20] == [6] * 20  # one query per status while the fallback holds, ...
    assert costs[-8:] == [1] * 8  # ... then one chain again: every execution carried its status
    assert h.finished() == 30
    assert [line["msg"] for line in logs() if "status field" in line["msg"]] == [
        "kapso executions carry no status field; learning status with one query per status",
        "kapso executions carry a status field again; one query chain per workflow",
    ]


async def test_a_kapso_workflow_missing_from_one_listing_keeps_its_running_executions(http_session, clock, logs):
    """Issue #24 row 9: a workflow missing from one discovery listing had its running executions
    dropped (never counted when they ended), though the next listing had it again. A workflow is
    removed only once missing from 3 listings in a row, and polled meanwhile; should its list be
    gone (404), it is skipped, the source stays up."""
    clock.now = NOW
    listed = {"wf-a", "wf-b"}

    def execution(workflow: str, sid: str, started: float) -> dict[str, Any]:
        return {"id": sid, "status": "running", "started_at": iso(started), "ended_at": None, "workflow": {"id": workflow}}

    executions = {"wf-a": [execution("wf-a", "a-1", NOW - 60)], "wf-b": [execution("wf-b", "b-1", NOW - 50)]}
    deleted: set[str] = set()

    def serve(path: str, params: dict[str, str]) -> Any:
        if path == "/workflows":
            return {"data": [{"id": w} for w in sorted(listed)], "paging": {"cursors": {}, "next": None}}
        if path.startswith("/workflow_executions/"):
            sid = path.rsplit("/", 1)[1]
            return next(e for items in executions.values() for e in items if e["id"] == sid)
        workflow = path.split("/")[2]
        if workflow in deleted:
            return CallbackResult(status=404, payload={"error": "workflow not found"})
        return {"data": executions[workflow], "paging": {"cursors": {}, "next": None}}

    source = make_source("kapso", workflow_ids=None, discovery_interval="10m", overlap="1m")
    h = Harness(source, http_session, clock)

    async def listing() -> None:
        clock.advance(600)  # wf-a stays busy: the window moves on, past b-1's start
        executions["wf-a"].append(execution("wf-a", f"a-{clock.now}", clock.now - 2) | {"status": "ended"})
        assert await h.poller.run_cycle()

    with aioresponses() as m:
        m.get(Upstream.pattern(), callback=Upstream(serve), repeat=True)
        assert await h.poller.run_cycle()
        assert h.value("agent_sessions_active") == 2
        listed.discard("wf-b")  # one listing without it (eventual consistency, a page boundary moving)
        await listing()
        listed.add("wf-b")
        executions["wf-b"][0].update(status="ended", ended_at=iso(clock.now))
        await listing()
        assert h.finished(workflow="wf-b") == 1  # b-1, counted when it ended
        assert h.value("agent_session_exporter_pending_dropped_total", reason="workflow_removed") == 0

        executions["wf-b"].append(execution("wf-b", "b-2", clock.now - 5))
        await listing()
        listed.discard("wf-b")
        deleted.add("wf-b")  # really gone: its list answers 404 while it is given its three listings
        for _ in range(2):
            await listing()
            assert h.value("agent_session_exporter_pending_dropped_total", reason="workflow_removed") == 0
        await listing()
    assert h.value("agent_session_exporter_pending_dropped_total", reason="workflow_removed") == 1
    assert h.value("agent_sessions_active") == 1  # a-1, still running
    assert h.finished(workflow="wf-a") == 6
    assert h.value("agent_session_exporter_source_up") == 1


async def test_a_dify_lookup_stops_at_the_first_page_that_proves_created_at_before_ignored(http_session, clock, logs):
    """Issue #24 row 6: a pending run is looked up in the log rows of its own second; an upstream that
    ignores ``created_at__before`` answers every row since, and the lookup paged through them all
    until its row came up (1,220 requests a cycle for 20 runs paused two hours back, instead of 20).
    The lookup checks that the rows it got are of the second it asked for: the first page that
    proves the filter ignored ends it (the run waits; counted as ``filter_ignored``)."""
    clock.now = NOW
    second = int(NOW)

    def row(n: int, created: int, status: str = "succeeded") -> dict[str, Any]:
        return {
            "id": f"log-{n}",
            "created_at": created,
            "workflow_run": {
                "id": f"run-{n}",
                "status": status,
                "created_at": created,
                "finished_at": None if status == "running" else created + 1,
                "elapsed_time": 1.0,
            },
        }

    paused = [row(n, second - 7200 + 5 * n, "running") for n in range(20)]
    done = [row(100 + n, second - 7000 + n * 7000 // 6100) for n in range(6100)]
    rows = sorted(paused + done, key=lambda r: r["created_at"], reverse=True)

    def serve(path: str, params: dict[str, str]) -> Any:
        after = datetime.fromisoformat(params["created_at__after"].replace("Z", "+00:00")).timestamp()
        chosen = [r for r in rows if r["created_at"] >= after]  # created_at__before: ignored
        page, limit = int(params["page"]), int(params["limit"])
        return {
            "page": page,
            "limit": limit,
            "total": len(chosen),
            "has_more": len(chosen) > page * limit,
            "data": chosen[(page - 1) * limit : page * limit],
        }

    upstream = Upstream(serve)
    h = Harness(make_source("dify", overlap="1m", initial_lookback="3h"), http_session, clock)
    state = h.poller.state
    state.floor, state.watermark = NOW - 3 * 3600, float(done[-1]["created_at"])
    state.counted.update({r["workflow_run"]["id"]: float(r["created_at"]) for r in done})
    state.pending.update({r["workflow_run"]["id"]: PendingSession(float(r["created_at"]), "running", NOW - 7200) for r in paused})
    with aioresponses() as m:
        m.get(Upstream.pattern(), callback=upstream, repeat=True)
        assert await h.poller.run_cycle()
    assert h.value("agent_session_exporter_cycle_requests_total", kind="lookup") == 20
    assert h.value("agent_session_exporter_invalid_records_total", reason="filter_ignored") == 20
    assert h.value("agent_session_exporter_pending_sessions") == 20  # they wait: neither gone nor counted
    assert h.value("agent_session_exporter_pending_dropped_total") == 0
    assert [line["errors"] for line in logs("warning") if line["msg"].startswith("pending sessions could not")] == [
        ["filter_ignored"]
    ]


async def test_a_whatabot_lookup_answered_with_another_session_proves_session_id_ignored(http_session, clock):
    """The same rule for every lookup: Whatabot's ``sessionId`` filter ignored answers the newest session."""
    clock.now = NOW
    newest = {"id": "wb-new", "status": "completed", "warnings": 0, "startedAt": iso(NOW - 5), "finishedAt": iso(NOW)}
    h = Harness(make_source("whatabot"), http_session, clock)
    with aioresponses() as m:
        m.get(Upstream.pattern(), callback=Upstream(lambda p, q: spring([newest], 0, int(q["size"]), 1)), repeat=True)
        result = await h.provider.poll(PollWindow(since=NOW - 60, now=NOW, stale_pending=(PendingRef("wb-old", NOW - 7200),)))
    assert result.unreadable == {"wb-old": "filter_ignored"} and result.invalid == [("filter_ignored", None)]
    assert [r.session_id for r in result.records] == ["wb-new"] and not result.gone


async def test_a_full_syntropic_page_of_one_started_at_is_counted_in_a_self_metric(http_session, clock, logs):
    """Issue #24 row 14: 450 sessions started in one second (``str(datetime)``: no fraction), 200 to a
    page, no offset: the list cannot be paged past the first 200. That loss was only a log line; it
    is counted in ``agent_session_exporter_stuck_pages_total``, once a cycle that hits it."""
    clock.now = NOW
    listed = [syntropic(f"s-{n}", float(int(NOW) - 30)) for n in range(450)]

    def serve(path: str, params: dict[str, str]) -> Any:
        low = datetime.fromisoformat(params["started_after"].replace("Z", "+00:00")).timestamp()
        high = (
            datetime.fromisoformat(params["started_before"].replace("Z", "+00:00")).timestamp()
            if "started_before" in params
            else math.inf
        )
        chosen = [s for s in listed if low <= datetime.fromisoformat(s["started_at"]).timestamp() <= high]
        return {"sessions": chosen[: int(params["limit"])], "total": min(len(chosen), int(params["limit"]))}

    h = Harness(make_source("syntropic137", initial_lookback="1h"), http_session, clock)
    with aioresponses() as m:
        m.get(Upstream.pattern(), callback=Upstream(serve), repeat=True)
        assert await h.poller.run_cycle()
    assert h.finished() == 200
    assert h.value("agent_session_exporter_stuck_pages_total") == 1
    assert [line["started_at"] for line in logs("warning") if "cannot page further" in line["msg"]] == [
        "2026-05-28T20:26:10.000000Z"
    ]


async def test_honeyhive_events_of_40_kb_at_the_default_page_size_are_read_at_half_the_page_size(clock, logs):
    """Issue #24 row 13: 1,000 session events of 40 KB make a 40 MB page, over the 32 MiB cap: every
    page was refused and the source stayed down, 0 of 1,200 counted. A page over the cap restarts the
    read at half the page size (down to 10), kept for the next cycles, said in a log line and a gauge.
    (A real server on loopback: aioresponses cannot hold a body this large.)"""
    clock.now = NOW
    start = int((NOW - 1800) * 1000)
    events = [
        {
            "event_id": f"ev-{n}",
            "session_id": f"hh-{n}",
            "event_type": "session",
            "start_time": start + n,
            "end_time": start + n + 500,
            "duration": 500,
            "error": None,
            "metadata": {"total_tokens": 10},
            "outputs": {"text": "x" * 40_000},
        }
        for n in range(1200)
    ]
    sizes: list[int] = []

    async def export(request: web.Request) -> web.Response:
        query = await request.json()
        limit, page = query["limit"], query["page"]
        sizes.append(limit)
        return web.json_response({"events": events[(page - 1) * limit : page * limit], "totalEvents": len(events)})

    app = web.Application()
    app.router.add_post("/v1/events/export", export)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        async with aiohttp.ClientSession() as session:
            base_url = "http://127.0.0.1:{}".format(runner.addresses[0][1])
            h = Harness(make_source("honeyhive", api="events", settle_after=0, base_url=base_url), session, clock)
            gauge = h.value("agent_session_exporter_page_size")
            assert await h.poller.run_cycle(), h.poller.last_result
            clock.advance(60)
            assert await h.poller.run_cycle()  # the next cycle asks for 500 from the start
    finally:
        await runner.cleanup()
    assert h.finished() == 1200
    assert sizes[0] == 1000 and set(sizes[1:]) == {500}
    assert (gauge, h.value("agent_session_exporter_page_size")) == (1000, 500)
    assert h.value("agent_session_exporter_requests_total", code="too_large") == 1
    assert [(line["page_size"], line["was"]) for line in logs("warning") if "max_response_bytes" in line["msg"]] == [(500, 1000)]


async def test_a_kapso_workflow_given_up_on_in_a_cycle_that_fails_is_reported_by_the_next(http_session, clock):
    """The removal of a workflow is kept until a poll returns: a cycle that fails after the listing (or a
    read started again at half the page size) no longer loses it, leaving its executions pending."""
    clock.now = NOW
    listed = {"wf-a", "wf-b"}
    failing = {"now": False}

    def serve(path: str, params: dict[str, str]) -> Any:
        if path == "/workflows":
            return {"data": [{"id": w} for w in sorted(listed)], "paging": {"cursors": {}, "next": None}}
        workflow = path.split("/")[2]
        if workflow == "wf-a" and failing["now"]:
            return CallbackResult(status=400, payload={"error": "bad request"})
        return {
            "data": [{"id": f"{workflow}-1", "status": "running", "started_at": iso(NOW - 50), "workflow": {"id": workflow}}]
            if workflow in listed
            else [],
            "paging": {"cursors": {}, "next": None},
        }

    h = Harness(make_source("kapso", workflow_ids=None, discovery_interval="10m"), http_session, clock)
    with aioresponses() as m:
        m.get(Upstream.pattern(), callback=Upstream(serve), repeat=True)
        assert await h.poller.run_cycle()
        listed.discard("wf-b")
        for _ in range(2):
            clock.advance(600)
            assert await h.poller.run_cycle()
        clock.advance(600)
        failing["now"] = True  # the third listing without wf-b, then a failed request
        assert not await h.poller.run_cycle()
        failing["now"] = False
        clock.advance(30)
        assert await h.poller.run_cycle()
    assert h.value("agent_session_exporter_pending_dropped_total", reason="workflow_removed") == 1
    assert h.value("agent_sessions_active", workflow="wf-b") == 0


@pytest.mark.parametrize("provider", ["whatabot", "dify"])
async def test_a_full_page_never_ends_paging_whatever_the_answer_says_of_a_total(http_session, clock, provider):
    """The shared paging rule (#24): a total that counts the page (``last``: true, ``has_more``: false on
    every page) ended the read after its first full page: 100 of 250 counted."""
    clock.now = NOW

    def serve(path: str, params: dict[str, str]) -> Any:
        if provider == "whatabot":
            page, size = int(params["page"]), int(params["size"])
            chunk = [
                {
                    "id": f"s-{n}",
                    "status": "completed",
                    "warnings": 0,
                    "startedAt": iso(NOW - 10 - n),
                    "finishedAt": iso(NOW - 5 - n),
                }
                for n in range(250)
            ][page * size : (page + 1) * size]
            return {"content": chunk, "totalElements": len(chunk), "number": page, "last": True}
        page, limit = int(params["page"]), int(params["limit"])
        chunk = [
            {
                "id": f"log-{n}",
                "created_at": int(NOW) - 10 - n,
                "workflow_run": {
                    "id": f"s-{n}",
                    "status": "succeeded",
                    "created_at": int(NOW) - 10 - n,
                    "finished_at": int(NOW) - 5 - n,
                },
            }
            for n in range(250)
        ][(page - 1) * limit : page * limit]
        return {"page": page, "limit": limit, "total": len(chunk), "has_more": False, "data": chunk}

    h = Harness(make_source(provider, initial_lookback="1h"), http_session, clock)
    with aioresponses() as m:
        m.get(Upstream.pattern(), callback=Upstream(serve), repeat=True)
        assert await h.poller.run_cycle()
    assert h.finished() == 250
