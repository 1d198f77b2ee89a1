"""Hostile upstream data (issue #10, defects 1-8): each case breaks one session or one figure at
most, never a source, and never a counter."""

from __future__ import annotations

import asyncio
import math
from datetime import datetime, timezone
from typing import Any

import pytest
from aioresponses import CallbackResult, aioresponses
from prometheus_client import generate_latest

from agent_session_exporter.keep.sqlite import SqliteStore
from agent_session_exporter.model import PendingRef, PollWindow

from .helpers import Harness, Upstream, check_exposition, make_source

NOW = 1_780_000_000.0


def text(ts: float) -> str:
    return str(datetime.fromtimestamp(ts, timezone.utc))


def syntropic(sid: str, started: float, status: str = "completed", **extra: Any) -> dict[str, Any]:
    return {"id": sid, "status": status, "started_at": text(started),
            "completed_at": None if status == "running" else text(started + 5),
            "duration_seconds": None if status == "running" else 5.0, "total_cost_usd": "0.5",
            "input_tokens": 10, "output_tokens": 5, **extra}



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
    h = Harness(make_source("syntropic137", overlap="1m", max_pending_age="3h", initial_lookback="3h", retries=0),
                http_session, clock)
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

@pytest.mark.parametrize("bad", [
    {"total_cost_usd": "sNaN"}, {"total_cost_usd": "NaN"}, {"total_cost_usd": "1e400"}, {"total_cost_usd": 1e308},
    {"input_tokens": -5}, {"input_tokens": "1e400"}, {"duration_seconds": "1e400"}, {"duration_seconds": "Infinity"},
    {"output_tokens": 10**400}, {"total_cost_usd": True}, {"total_cost_usd": [1]},
])
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
    store.db.execute("INSERT INTO sources VALUES ('syntropic137-src', 'syntropic137', NULL, NULL, ?)",
                     ('{"finished":[["completed","success",3]],"duration_buckets":{},"duration_sum":{},'
                      '"bounds":[],"warnings":0,"errors":0,"tokens":{"input":Infinity},"cost":{"m":NaN}}',))
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

@pytest.mark.parametrize("sid, wire", [("../../admin", "/sessions/..%2F..%2Fadmin"),
                                       ("abc?x=1", "/sessions/abc%3Fx=1"), ("a b#c", "/sessions/a%20b%23c")])
async def test_ids_are_percent_encoded_in_detail_paths(http_session, clock, sid, wire):
    upstream = syntropic_upstream([], {sid: syntropic(sid, NOW - 7200)})
    h = Harness(make_source("syntropic137"), http_session, clock)
    with aioresponses() as m:
        m.get(Upstream.pattern(), callback=upstream, repeat=True)
        result = await h.provider.poll(PollWindow(since=NOW - 60, now=NOW,
                                                  stale_pending=(PendingRef(sid, NOW - 7200),)))
    assert upstream.raw_paths[-1] == wire
    assert [r.session_id for r in result.records] == [sid] and not result.gone


# 8 -------------------------------------------------------------------------------------------

async def test_a_looping_upstream_costs_one_request_budget_per_cycle(http_session, clock):
    counter = {"n": 0}

    def serve(path: str, params: dict[str, str]) -> Any:
        counter["n"] += 1  # always one more page, always a new cursor
        return {"data": [], "paging": {"cursors": {"after": f"c{counter['n']}"}, "next": "more"}} | {
            "data": [{"id": f"e{counter['n']}", "status": "running", "started_at": "2026-05-28T20:00:00Z"}]}
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
    h = Harness(make_source("syntropic137", overlap="1m", initial_lookback="3h", max_pending_checks=15),
                http_session, clock)
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
    listed = [syntropic("s-1", NOW - 50, "compl\ud800eted", agent_model="m\udfff", workflow_id="wf\ud800",
                        workflow_name="name\ud800"),
              syntropic("s-2", NOW - 40), syntropic("s-3", NOW - 30, "failed", error_message="boom\ud800")]
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
    listed = [syntropic("bad-\ud800", NOW - 50), syntropic("x" * 257, NOW - 45), syntropic("é" * 128, NOW - 42),
              syntropic("s-2", NOW - 40)]
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
