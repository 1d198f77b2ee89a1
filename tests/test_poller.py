"""The collector: incremental polling, its request cost, pending sessions and pruning, against the simulators."""

from __future__ import annotations

import asyncio
import math
from typing import Any, Callable

import aiohttp
import pytest
from aiohttp import web
from aioresponses import CallbackResult, aioresponses

from agent_session_exporter.app import Exporter
from agent_session_exporter.config import parse_config
from agent_session_exporter.demo.runner import DEMO_SOURCES, demo_config, running_simulators
from agent_session_exporter.demo.server import HONEYHIVE_PROJECT, PREFIXES, Simulators
from agent_session_exporter.keep.sqlite import SqliteStore

from .helpers import FakeClock, Harness, Upstream, make_source, parse_exposition, spring_page, total_of, whatabot_item


async def test_steady_state_costs_one_request_per_source_per_cycle(clock):
    # No retention: a HoneyHive session first seen ended at the lookback's edge must still be listed
    # when it is seen again settle_after later (one forgotten meanwhile stays pending, read back to).
    simulators = Simulators(clock=clock, rate=0.5, retention=None)
    simulators.backfill(3 * 3600)  # three hours of history: many pages on the first cycle
    async with running_simulators(simulators, tick_every=None) as base_url:
        exporter = Exporter(demo_config(base_url, listen="127.0.0.1:0"), clock=clock)
        await exporter.open()
        try:
            await exporter.run_once()
            first = dict(simulators.requests)
            for factory in simulators.factories.values():
                factory.rate = 0  # nothing new upstream from here on
            simulators.finish_all()
            await run_cycles(exporter, simulators, clock, 3, 15)
            simulators.requests.clear()
            cycles = 5
            for _ in range(cycles):
                clock.advance(15)
                await exporter.run_once()
        finally:
            await exporter.close()
    # 1 h lookback at 0.5 sessions/s is ~1,800 sessions: 18+ pages of 100 on the first cycle.
    assert first["whatabot"] >= 18 and first["dify"] >= 18
    per_cycle = {provider: count / cycles for provider, count in simulators.requests.items()}
    # HoneyHive: three sources (one per API); Kapso: 2 workflows; n8n: the list, status=running, status=waiting.
    assert per_cycle == {"whatabot": 1, "dify": 1, "syntropic137": 1, "honeyhive": 3, "kapso": 2, "n8n": 3}


async def test_memory_and_rows_stay_flat_while_ten_times_more_sessions_flow(tmp_path, clock):
    simulators = Simulators(clock=clock, rate=2.0, retention=600)
    async with running_simulators(simulators, tick_every=None) as base_url:
        raw_sources = [
            {
                "name": f"s-{p}",
                "provider": p,
                "base_url": base_url + prefix,
                "initial_lookback": 0,
                "overlap": "2m",
                **({"api_key": f"demo-{p}-key"} if p != "syntropic137" else {}),
            }
            for p, prefix in (("dify", "/dify/v1"), ("syntropic137", "/syntropic137"))
        ]
        config = parse_config({"state_path": str(tmp_path / "s.db"), "sources": raw_sources}, {})
        store = SqliteStore(config.state_path, {s.name: s.provider for s in config.sources})
        exporter = Exporter(config, store, clock=clock)
        await exporter.open()

        async def flow(minutes: int) -> tuple[int, dict[str, int]]:
            for _ in range(minutes * 2):
                clock.advance(30)
                simulators.tick()
                assert all((await exporter.run_once()).values())
            tracked = sum(len(c.state.counted) + len(c.state.pending) for c in exporter.pollers.values())
            return tracked, store.row_counts()

        try:
            tracked_1x, rows_1x = await flow(10)  # ~1,200 sessions per source
            tracked_10x, rows_10x = await flow(100)  # ~12,000 more per source
            finished = sum(
                sum(f.truth.finished.values()) for p, f in simulators.factories.items() if p in ("dify", "syntropic137")
            )
        finally:
            await exporter.close()
    assert finished > 20_000
    assert tracked_1x > 200  # the overlap window really holds ids
    assert tracked_10x <= tracked_1x * 1.3
    assert rows_10x["counted"] <= rows_1x["counted"] * 1.3 and rows_10x["pending"] <= rows_1x["pending"] * 1.5 + 20


async def test_a_session_stuck_active_beyond_max_pending_age_is_dropped_and_counted(clock):
    clock.now = 1_780_000_000.0
    item = whatabot_item(1, status="running", started=clock.now - 10)
    async with aiohttp.ClientSession() as session:
        h = Harness(make_source("whatabot", max_pending_age="1h", overlap="1m"), session, clock)
        with aioresponses() as m:
            m.get(
                Upstream.pattern(),
                callback=Upstream(
                    lambda p, q: spring_page([item] if q.get("sessionId") in (None, item["id"]) else [], 0, 100, 1)
                ),
                repeat=True,
            )
            await h.poller.run_cycle()
            assert h.value("agent_sessions_active", status="running") == 1
            clock.advance(1800)
            await h.poller.run_cycle()
            assert h.value("agent_sessions_active", status="running") == 1
            clock.advance(1800)
            await h.poller.run_cycle()
    assert h.value("agent_sessions_active", status="running") == 0
    assert h.value("agent_session_exporter_pending_dropped_total", reason="max_pending_age") == 1
    assert h.finished() == 0


async def run_cycles(
    exporter: Exporter, simulators: Simulators, clock: FakeClock, count: int, seconds: float, provider: str | None = None
) -> list[int]:
    """Run ``count`` cycles ``seconds`` apart, the simulators moving on before each; the requests
    ``provider``'s simulator got in each (none counted without one)."""
    costs = []
    for _ in range(count):
        clock.advance(seconds)
        simulators.tick()
        before = simulators.requests[provider] if provider else 0
        await exporter.run_once()
        costs.append(simulators.requests[provider] - before if provider else 0)
    return costs


async def drain(exporter: Exporter, simulators: Simulators, clock: FakeClock, seconds: float, cycles: int = 3) -> None:
    """Nothing new upstream, everything running ends, and the exporter catches up."""
    for factory in simulators.factories.values():
        factory.rate = 0
    simulators.finish_all()
    await run_cycles(exporter, simulators, clock, cycles, seconds)


CHAINS = {
    "whatabot": 1,
    "dify": 1,
    "syntropic137": 1,
    "honeyhive": 3,
    "kapso": 2,
    "n8n": 3,
}  # requests per steady cycle (n8n: the list, status=running, status=waiting)


async def test_after_a_burst_requests_fall_to_one_per_chain_and_counters_stay_exact(clock):
    """300 sessions per source at once, polled every second: once the burst has been read, each
    cycle costs one request per chain, plus a sweep of the overlap window at most once per overlap."""
    simulators = Simulators(clock=clock, rate=0.0)
    async with running_simulators(simulators, tick_every=None) as base_url:
        exporter = Exporter(demo_config(base_url, listen="127.0.0.1:0", interval=1), clock=clock)
        await exporter.open()
        try:
            await exporter.run_once()
            for factory in simulators.factories.values():
                for _ in range(300):
                    factory.start_session(
                        started_at=clock.now - factory.random.uniform(0, 1), duration=factory.random.uniform(1, 4)
                    )
            await run_cycles(exporter, simulators, clock, 20, 1)  # the burst starts, runs and ends
            simulators.requests.clear()
            cycles = 240  # four overlap periods of a minute (HoneyHive: ten minutes) at a 1 s interval
            for _ in range(cycles):
                clock.advance(1)
                simulators.tick()
                assert all((await exporter.run_once()).values())
            samples = parse_exposition(exporter.render_metrics().decode())
        finally:
            await exporter.close()
    for provider, factory in simulators.factories.items():
        # The sweeps re-read the burst (or, for Dify, a count probe finds nothing late); everything else
        # is one request per chain.
        assert simulators.requests[provider] <= cycles * CHAINS[provider] * 1.2, provider
        truth = sum(factory.truth.finished.values())
        assert truth >= 300
        for source, p in DEMO_SOURCES.items():
            if p == provider:
                assert total_of(samples, "agent_sessions_finished_total", source=source) == truth, source
    assert total_of(samples, "agent_session_exporter_sweeps_total") >= 6  # every source swept


async def test_a_session_written_late_behind_the_newest_is_counted_once_by_the_sweep(clock):
    simulators = Simulators(clock=clock, rate=0.0)
    async with running_simulators(simulators, tick_every=None) as base_url:
        config = parse_config(
            {
                "sources": [
                    {
                        "name": "wb",
                        "provider": "syntropic137",
                        "overlap": "2m",
                        "base_url": base_url + "/syntropic137",
                        "initial_lookback": "10m",
                    }
                ]
            },
            {},
        )
        exporter = Exporter(config, clock=clock)
        await exporter.open()
        try:
            factory = simulators.factories["syntropic137"]
            factory.start_session(duration=1)
            clock.advance(5)
            simulators.tick()
            await exporter.run_once()  # the first cycle sweeps
            newest = exporter.pollers["wb"].state.watermark
            late = factory.start_session(started_at=newest - 30, duration=2)  # written now, keyed 30 s back
            clock.advance(5)
            simulators.tick()
            await exporter.run_once()
            # A sweep, within one overlap period (here at once: it costs no more), finds it.
            await run_cycles(exporter, simulators, clock, 30, 5)
            totals = exporter.pollers["wb"].state.totals.finished
        finally:
            await exporter.close()
    assert not late.running and sum(totals.values()) == 2 == sum(factory.truth.finished.values())


async def test_a_session_written_up_to_overlap_late_just_after_a_sweep_is_counted_once(clock):
    """The next sweep reaches back to the watermark of the last one minus ``overlap``: a session
    written right after a sweep, keyed almost ``overlap`` behind the newest, is still found while
    new sessions keep moving the watermark."""
    simulators = Simulators(clock=clock, rate=0.2, min_duration=1, max_duration=2)
    async with running_simulators(simulators, tick_every=None) as base_url:
        config = parse_config(
            {
                "interval": 5,
                "sources": [
                    {
                        "name": "st",
                        "provider": "syntropic137",
                        "overlap": "2m",
                        "base_url": base_url + "/syntropic137",
                        "initial_lookback": "10m",
                    }
                ],
            },
            {},
        )
        exporter = Exporter(config, clock=clock)
        await exporter.open()
        collector = exporter.pollers["st"]
        sweeps = collector.metrics.m.sweeps.labels("st", "syntropic137")
        try:
            factory = simulators.factories["syntropic137"]
            await run_cycles(exporter, simulators, clock, 3, 5)
            swept = sweeps._value.get()
            for _ in range(60):  # until a sweep happens
                clock.advance(5)
                simulators.tick()
                await exporter.run_once()
                if sweeps._value.get() > swept:
                    break
            assert sweeps._value.get() > swept
            late = factory.start_session(started_at=collector.state.watermark - 110, duration=1)
            # The watermark moves on; the next sweep must still reach 110 s back.
            await run_cycles(exporter, simulators, clock, 60, 5)
            simulators.factories["syntropic137"].finish_all()
            await run_cycles(exporter, simulators, clock, 2, 5)
            counted = sum(collector.state.totals.finished.values())
        finally:
            await exporter.close()
    assert not late.running and sweeps._value.get() >= swept + 3
    assert counted == sum(factory.truth.finished.values())


#: Requests of one probe: Dify and HoneyHive ask for a count; Whatabot for the newest page, then one row.
PROBE_REQUESTS = {"dify": 1, "whatabot": 2, "honeyhive": 1}


def dify_source(base_url: str, **extra: object) -> dict[str, object]:
    return {
        "name": "dy",
        "provider": "dify",
        "base_url": base_url + "/dify/v1",
        "api_key": "demo-dify-key",
        "initial_lookback": "10m",
        **extra,
    }


async def test_sessions_of_one_second_still_running_are_re_read_on_the_next_cycles_not_at_a_sweep(clock):
    """Dify shows times in whole seconds: 300 runs started in the same second share the newest key
    time. Those still running must be re-read as they end, not left until the next sweep."""
    simulators = Simulators(clock=clock, rate=0.0)
    async with running_simulators(simulators, tick_every=None) as base_url:
        exporter = Exporter(parse_config({"interval": 1, "sources": [dify_source(base_url, overlap="10m")]}, {}), clock=clock)
        await exporter.open()
        collector = exporter.pollers["dy"]
        try:
            factory = simulators.factories["dify"]
            for age in range(550):  # nine minutes of finished runs: a sweep costs far more than the read
                factory.start_session(started_at=clock.now - 560 + age, duration=1)
            clock.advance(5)
            simulators.tick()
            await exporter.run_once()
            second = int(clock.now) - 1
            for _ in range(300):
                factory.start_session(started_at=second + factory.random.uniform(0, 0.9), duration=factory.random.uniform(1, 4))
            await run_cycles(exporter, simulators, clock, 10, 1)
            counted = sum(collector.state.totals.finished.values())
        finally:
            await exporter.close()
    assert sum(factory.truth.finished.values()) == 850 == counted
    assert collector.metrics.m.sweeps.labels("dy", "dify")._value.get() == 1  # the first cycle's only


@pytest.mark.parametrize("provider", ["dify", "whatabot", "honeyhive"])
async def test_a_probe_spares_the_sweep_until_a_row_is_written_late_then_it_counts_once(clock, provider):
    """Instead of a due sweep, one cheap question: Dify's and HoneyHive's count of the band's rows,
    Whatabot's row at the offset of the rows known. While the answer matches, nothing was written late;
    once a row is written late, the band is swept on the next cycle and the late session counts once."""
    simulators = Simulators(clock=clock, rate=1.0, min_duration=1, max_duration=20, honeyhive_ignores_filters=False)
    async with running_simulators(simulators, tick_every=None) as base_url:
        source = {
            "name": "src",
            "provider": provider,
            "base_url": base_url + PREFIXES[provider],
            "api_key": f"demo-{provider}-key",
            "initial_lookback": "10m",
            "overlap": "1m",
            "page_size": 10,  # a sweep costs several pages
            **({"api": "events", "project": HONEYHIVE_PROJECT, "settle_after": "5s"} if provider == "honeyhive" else {}),
        }
        exporter = Exporter(parse_config({"interval": 10, "sources": [source]}, {}), clock=clock)
        await exporter.open()
        collector = exporter.pollers["src"]
        m = collector.metrics.m
        labels = ("src", provider)

        try:
            factory = simulators.factories[provider]
            await run_cycles(exporter, simulators, clock, 3, 10)
            costs = await run_cycles(exporter, simulators, clock, 30, 10, provider)  # five overlap periods
            clean = m.sweep_probes.labels(*labels, "clean")._value.get()
            assert clean >= 4 and m.sweep_probes.labels(*labels, "changed")._value.get() == 0
            assert m.cycle_requests.labels(*labels, "probe")._value.get() == clean * PROBE_REQUESTS[provider]
            # A sweep reads back two overlap periods (some 130 rows, 13 pages of 10); no cycle did.
            assert max(costs) <= 6, costs
            late = factory.start_session(started_at=collector.state.watermark - 40, duration=1)
            costs = await run_cycles(exporter, simulators, clock, 8, 10, provider)
            assert m.sweep_probes.labels(*labels, "changed")._value.get() == 1 and max(costs) >= 10, costs
            await drain(exporter, simulators, clock, 10)
            counted = sum(collector.state.totals.finished.values())
        finally:
            await exporter.close()
    assert not late.running
    assert counted == sum(factory.truth.finished.values())


async def test_a_dify_run_paused_for_an_hour_is_looked_up_in_its_own_second_not_read_back_to(clock):
    """A run waiting an hour for a human, on a busy app: re-reading the log back to it every cycle
    would cost hundreds of pages. It is looked up instead, in the rows of its own second (one
    request), and counts once, with the figures only the list has, when it ends."""
    simulators = Simulators(clock=clock, rate=2.0, min_duration=1, max_duration=5)
    async with running_simulators(simulators, tick_every=None) as base_url:
        source = dify_source(base_url, page_size=20, max_pages=10_000)
        exporter = Exporter(parse_config({"interval": 30, "sources": [source]}, {}), clock=clock)
        await exporter.open()
        collector = exporter.pollers["dy"]
        factory = simulators.factories["dify"]
        try:
            paused = factory.start_session(duration=3600)
            costs = []
            for _ in range(125):  # an hour and a bit
                clock.advance(30)
                simulators.tick()
                before = simulators.requests["dify"]
                assert await collector.run_cycle()
                costs.append(simulators.requests["dify"] - before)
            await drain(exporter, simulators, clock, 30)
            totals = collector.state.totals
        finally:
            await exporter.close()
    # 60 new runs a cycle are 3 to 4 pages of 20; reading back an hour would be 360 pages.
    assert not paused.running and max(costs[20:]) <= 12, max(costs[20:])
    assert sum(totals.finished.values()) == sum(factory.truth.finished.values())
    assert sum(totals.warnings.values()) == factory.truth.warnings
    assert collector.metrics.m.cycle_requests.labels("dy", "dify", "lookup")._value.get() >= 100


async def test_a_probe_that_fails_leaves_the_sweep_to_the_next_cycle(clock):
    """A probe that cannot answer never stands for a sweep: the next cycle reads the band."""
    simulators = Simulators(clock=clock, rate=1.0, min_duration=1, max_duration=20)
    simulators.faults["dify"] = lambda request: (
        web.Response(status=500, text="probe refused\n") if request.query.get("limit") == "1" else None
    )
    async with running_simulators(simulators, tick_every=None) as base_url:
        source = dify_source(base_url, overlap="1m", page_size=10, retries=0)
        exporter = Exporter(parse_config({"interval": 10, "sources": [source]}, {}), clock=clock)
        await exporter.open()
        collector = exporter.pollers["dy"]
        m = collector.metrics.m
        try:
            for _ in range(20):
                clock.advance(10)
                simulators.tick()
                assert await collector.run_cycle()
            factory = simulators.factories["dify"]
            await drain(exporter, simulators, clock, 10)
            counted = sum(collector.state.totals.finished.values())
        finally:
            await exporter.close()
    assert m.cycle_requests.labels("dy", "dify", "probe")._value.get() >= 2  # asked, and refused
    assert m.sweep_probes.labels("dy", "dify", "clean")._value.get() == 0
    assert m.sweeps.labels("dy", "dify")._value.get() >= 3  # the first cycle's, and one after each refusal
    assert counted == sum(factory.truth.finished.values())


async def test_a_list_written_as_runs_end_costs_what_is_new_under_load(clock):
    """Dify 1.x writes a run's log row when it ends: nothing is pending, and under 15 new runs/s at a
    30 s interval a cycle reads what is new, ceil(new / page_size), plus a count probe once per
    overlap period instead of a sweep, with every run counted."""
    simulators = Simulators(clock=clock, rate=15.0, min_duration=2, max_duration=40, dify_logs_at="finish")
    async with running_simulators(simulators, tick_every=None) as base_url:
        exporter = Exporter(parse_config({"interval": 30, "sources": [dify_source(base_url)]}, {}), clock=clock)
        await exporter.open()
        factory = simulators.factories["dify"]
        try:
            await run_cycles(exporter, simulators, clock, 3, 30)
            requests, ideal = 0, 0
            for _ in range(12):  # six overlap periods
                ended = sum(factory.truth.finished.values())
                clock.advance(30)
                simulators.tick()
                before = simulators.requests["dify"]
                await exporter.run_once()
                requests += simulators.requests["dify"] - before
                rows = (sum(factory.truth.finished.values()) - ended) * 17 / 16  # one row in sixteen has no run
                ideal += max(1, math.ceil(rows / 100))
            await drain(exporter, simulators, clock, 30, 2)
            counted = sum(exporter.pollers["dy"].state.totals.finished.values())
        finally:
            await exporter.close()
    assert counted == sum(factory.truth.finished.values()) > 5000
    assert ideal >= 60 and requests <= 1.2 * ideal, (requests, ideal)


class FailingStore:
    """A MemoryStore whose commits fail while ``failing`` is set."""

    def __init__(self) -> None:
        from agent_session_exporter.keep.store import MemoryStore

        self.inner = MemoryStore()
        self.failing = True

    def __getattr__(self, name: str):
        return getattr(self.inner, name)

    def commit(self, source, delta, totals) -> None:
        if self.failing:
            raise OSError("disk full")
        self.inner.commit(source, delta, totals)


async def test_self_metrics_are_bumped_only_after_the_commit(http_session, clock):
    clock.now = 1_780_000_000.0
    items = [whatabot_item(1, status="archived", started=clock.now - 50), {**whatabot_item(2), "status": 5}]
    store = FailingStore()
    h = Harness(make_source("whatabot"), http_session, clock, store=store)
    with aioresponses() as m:
        m.get(Upstream.pattern(), callback=Upstream(lambda p, q: spring_page(items, 0, 100, 2)), repeat=True)
        assert not await h.poller.run_cycle()  # the commit fails: nothing may be counted
        assert h.value("agent_session_exporter_unknown_status_total", status="archived") == 0
        assert h.value("agent_session_exporter_invalid_records_total", reason="wrong_type") == 0
        store.failing = False
        clock.advance(30)
        assert await h.poller.run_cycle()
    assert h.value("agent_session_exporter_unknown_status_total", status="archived") == 1
    assert h.value("agent_session_exporter_invalid_records_total", reason="wrong_type") == 1
    assert h.finished(status="archived", outcome="unknown") == 1


async def test_the_active_gauge_goes_through_the_label_cap(http_session, clock):
    clock.now = 1_780_000_000.0
    items = [whatabot_item(n, status=f"odd-status-{n}" + "x" * 100, started=clock.now - 50 + n) for n in range(5)]
    for item in items:
        item["finishedAt"] = None
    h = Harness(make_source("whatabot", max_label_values=2), http_session, clock)
    with aioresponses() as m:
        m.get(Upstream.pattern(), callback=Upstream(lambda p, q: spring_page(items, 0, 100, 5)), repeat=True)
        assert await h.poller.run_cycle()
    statuses = {
        labels["status"]: value
        for labels, value in (
            (s.labels, s.value) for f in h.registry.collect() for s in f.samples if s.name == "agent_sessions_active"
        )
    }
    assert len(statuses) == 3 and statuses["other"] == 3 and all(len(s) <= 128 for s in statuses)


async def test_a_source_whose_upstream_hangs_never_holds_up_another(clock):
    """Each source polls on its own task: while one upstream never answers, another keeps cycling
    (waited for as events, no wall-clock bound)."""
    hung = asyncio.Event()

    async def never_answers(request: web.Request) -> web.Response:
        hung.set()
        await asyncio.sleep(3600)
        return web.json_response({})

    app = web.Application()
    app.router.add_get("/sessions", never_answers)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    hung_url = "http://{}:{}".format(*runner.addresses[0][:2])
    simulators = Simulators(clock=clock, rate=0.5)
    try:
        async with running_simulators(simulators, tick_every=None) as base_url:
            config = parse_config(
                {
                    "interval": 1,
                    "sources": [
                        {"name": "hung", "provider": "syntropic137", "base_url": hung_url, "timeout": "1h", "retries": 0},
                        {"name": "fine", "provider": "dify", "base_url": base_url + "/dify/v1", "api_key": "demo-dify-key"},
                    ],
                },
                {},
            )
            exporter = Exporter(config, clock=clock)
            await exporter.open()
            exporter.start()
            try:
                await asyncio.wait_for(hung.wait(), 10)

                def cycles(source: str) -> float:
                    return total_of(
                        parse_exposition(exporter.render_metrics().decode()),
                        "agent_session_exporter_collect_duration_seconds_count",
                        source=source,
                    )

                for _ in range(100):  # bounded: 10 s
                    if cycles("fine") >= 3:
                        break
                    await asyncio.sleep(0.1)
                assert cycles("fine") >= 3 and exporter.pollers["fine"].last_result.startswith("ok")
                assert cycles("hung") == 0  # still waiting on its first answer
            finally:
                await exporter.close(grace=0.1)
    finally:
        await runner.cleanup()


# --- HoneyHive: the settle clock is the exporter's own -----------------------------------------

NOW = 1_780_000_000.0
#: The HoneyHive APIs, each with what it answers for a list of session events.
HONEYHIVE_ANSWERS = {
    "search": lambda events: {"events": events, "count": len(events)},
    "sessions": lambda events: events,
    "events": lambda events: {"events": events, "totalEvents": len(events)},
}


def honeyhive_event(start: float, end: float, error: str | None = None, tokens: int = 100) -> dict[str, object]:
    return {
        "event_id": "ev-1",
        "session_id": "sess-1",
        "event_type": "session",
        "event_name": "agent",
        "start_time": round(start * 1000),
        "end_time": round(end * 1000),
        "duration": (end - start) * 1000,
        "error": error,
        "metadata": {"prompt_tokens": tokens, "completion_tokens": tokens // 10, "cost": tokens / 1e4},
    }


class HoneyhiveUpstream:
    """One HoneyHive session served by whichever API the source reads, failing ``fail`` times first."""

    def __init__(self, api: str, session: dict[str, object]) -> None:
        self.session = session
        self.fail = 0
        self.upstream = Upstream(self.serve)
        self.answer = HONEYHIVE_ANSWERS[api]
        #: Called as an answer is sent (the moment the upstream's state is read), if set.
        self.on_answer: Callable[[], None] | None = None

    def serve(self, path: str, params: dict[str, str]) -> Any:
        if self.fail:
            self.fail -= 1
            return CallbackResult(status=503, payload={"message": "unavailable"})
        if self.on_answer is not None:
            self.on_answer()
        return self.answer([dict(self.session)])

    def mock(self, mocked: aioresponses) -> None:
        mocked.get(Upstream.pattern(), callback=self.upstream, repeat=True)
        mocked.post(Upstream.pattern(), callback=self.upstream, repeat=True)


@pytest.mark.parametrize("api", list(HONEYHIVE_ANSWERS))
async def test_a_poll_delayed_by_retries_past_settle_after_never_settles_a_session_still_moving(http_session, clock, api):
    """The cycle's start stood in for when its answer was read: a poll that retried for 400 s lent the
    settle clock those 400 s, and a session still running was counted 10 s after its end time last moved."""
    clock.now = NOW
    start = NOW - 60
    hh = HoneyhiveUpstream(api, honeyhive_event(start, NOW - 1))

    async def backoff(seconds: float) -> None:  # each retry's wait passes on the exporter's clock
        clock.advance(100)

    h = Harness(make_source("honeyhive", api=api, settle_after=300, retries=5), http_session, clock, sleep=backoff)
    with aioresponses() as mocked:
        hh.mock(mocked)
        assert await h.poller.run_cycle()
        clock.advance(30)
        hh.fail = 4  # four retries, 100 s each: the answer comes 400 s after the cycle began

        def newest_event_exported() -> None:  # the session is still running: an event a second old
            hh.session = honeyhive_event(start, clock.now - 1)
            hh.on_answer = None

        hh.on_answer = newest_event_exported
        assert await h.poller.run_cycle()
        clock.advance(10)  # no new event in these 10 s: the same end time again
        assert await h.poller.run_cycle()
        assert h.finished() == 0 and h.value("agent_sessions_active", status="running") == 1
        # It ends later, in error, with more tokens: that is what counts, once, settle_after after it is seen.
        clock.advance(100)
        end = clock.now - 1
        hh.session = honeyhive_event(start, end, error="tool failed", tokens=500)
        for _ in range(4):
            assert await h.poller.run_cycle()
            clock.advance(100)
    assert h.finished() == 1 and h.finished(status="ended", outcome="error") == 1
    assert h.value("agent_session_errors_total") == 1
    assert h.value("agent_session_tokens_total", token_type="input") == 500
    assert h.value("agent_session_duration_seconds_sum", outcome="error") == pytest.approx(end - start, abs=1e-3)


@pytest.mark.parametrize("api", list(HONEYHIVE_ANSWERS))
async def test_a_session_first_seen_long_ended_counts_only_once_it_stood_still_for_settle_after(http_session, clock, api):
    """HoneyHive exports events late: a session whose last event is an hour old when it is first seen
    may still be running. It was counted on first sight (its end time an hour back); now it waits
    settle_after from that sight, and a later event, with an error, is still taken."""
    clock.now = NOW
    start = NOW - 7200
    hh = HoneyhiveUpstream(api, honeyhive_event(start, NOW - 3600))
    h = Harness(make_source("honeyhive", api=api, settle_after=300, initial_lookback="3h"), http_session, clock)
    with aioresponses() as mocked:
        hh.mock(mocked)
        assert await h.poller.run_cycle()
        assert h.finished() == 0 and h.value("agent_sessions_active", status="running") == 1
        clock.advance(100)
        end = NOW + 90  # a later event arrives: the session was not over, and it failed
        hh.session = honeyhive_event(start, end, error="model refused", tokens=900)
        assert await h.poller.run_cycle()
        clock.advance(250)  # 250 s since that end time was first seen: not yet
        assert await h.poller.run_cycle()
        assert h.finished() == 0
        clock.advance(60)
        assert await h.poller.run_cycle()
        clock.advance(300)
        assert await h.poller.run_cycle()
    assert h.finished() == 1 and h.finished(status="ended", outcome="error") == 1
    assert h.value("agent_session_tokens_total", token_type="input") == 900
    assert h.value("agent_session_duration_seconds_sum", outcome="error") == pytest.approx(end - start, abs=1e-3)
