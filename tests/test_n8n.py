"""n8n, a built-in spec with no Python of its own, counted exactly against the n8n simulator (which is
held to a real n8n's recorded answers by tests/test_demo_n8n.py): executions hidden from the lists
while they run or wait, ids missing from the list, error texts and resumed starts read from the
detail, an n8n restart (runs in flight crash), and an exporter restart on the same state."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from aiohttp import web

from agent_session_exporter.config import parse_config
from agent_session_exporter.demo.n8n import N8N_WORKFLOWS, N8nFactory
from agent_session_exporter.demo.n8n_api import N8N_KEY, N8N_PREFIX, N8nSimulator
from agent_session_exporter.keep.sqlite import SqliteStore

from .helpers import FakeClock, Harness


def n8n_source(base_url: str, **overrides: Any) -> Any:
    entry = {
        "name": "n8n-src",
        "provider": "n8n",
        "base_url": base_url,
        "api_key": N8N_KEY,
        "initial_lookback": "1h",
        **overrides,
    }
    return parse_config({"sources": [entry]}, {}).sources[0]


async def test_n8n_is_counted_exactly_through_hidden_executions_and_both_restarts(tmp_path):
    clock = FakeClock()
    factory = N8nFactory(clock, seed=5, rate=1.0, min_duration=1.0, max_duration=90.0, waiting_share=0.0)
    factory.backfill(300)
    # Waits only from here on: one that ended before the exporter first saw the execution cannot be told
    # from the list (its duration then runs from the resume, as the README says).
    factory.waiting_share = 0.15
    runner = web.AppRunner(N8nSimulator(factory).app(), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    state = tmp_path / "state.db"
    try:
        async with aiohttp.ClientSession() as session:
            source = n8n_source(f"http://127.0.0.1:{runner.addresses[0][1]}{N8N_PREFIX}", page_size=50)
            for run in range(2):  # the second run: the exporter restarted on the same state
                store = SqliteStore(str(state), {source.name: source.provider})
                harness = Harness(source, session, clock, store=store)
                for cycle in range(24):
                    clock.advance(30)
                    factory.tick()
                    if run == 0 and cycle == 12:
                        factory.restart()  # n8n restarted: runs in flight crash, waits are listed
                    assert await harness.poller.run_cycle()
                store.close()
            factory.rate = 0.0
            clock.advance(30)
            factory.tick()
            factory.finish_all()
            store = SqliteStore(str(state), {source.name: source.provider})
            harness = Harness(source, session, clock, store=store)
            for _ in range(8):  # past the window: what ended is found by its lookup
                clock.advance(30)
                assert await harness.poller.run_cycle()
            store.close()
    finally:
        await runner.cleanup()
    truth = factory.truth
    expected = {key: float(n) for key, n in truth.finished.items()}
    assert {key: harness.finished(status=key[0], outcome=key[1]) for key in expected} == expected
    assert harness.finished() == sum(expected.values())
    assert sum(expected.values()) > 500 and expected.get(("crashed", "error"), 0) > 0
    assert harness.value("agent_sessions_active") == 0
    assert harness.value("agent_session_duration_seconds_count") == truth.durations
    # A wait begun and resumed wholly between two reads, while the execution was out of every list, leaves
    # no trace in the lists: such an execution's duration runs from its resume (the README says so).
    assert harness.value("agent_session_duration_seconds_sum") == pytest.approx(truth.duration_sum, rel=0.03)
    named = {
        dict(s.labels).get("workflow_name")
        for f in harness.registry.collect()
        for s in f.samples
        if s.name == "agent_session_workflow_info"
    }
    assert set(N8N_WORKFLOWS.values()) <= named


async def test_an_idle_cycle_costs_the_three_lists_and_no_detail_read_of_what_lies_past_the_window():
    """The first page reaches past the window's cutoff: its failed executions there are not counted
    again, so they are not re-read with includeData either (once they were, every idle cycle)."""
    clock = FakeClock()
    factory = N8nFactory(clock, seed=5, rate=0.5, min_duration=1.0, max_duration=20.0, waiting_share=0.0, retention=None)
    factory.backfill(3 * 3600)
    factory.rate = 0.0
    factory.finish_all()
    simulator = N8nSimulator(factory)
    runner = web.AppRunner(simulator.app(), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        async with aiohttp.ClientSession() as session:
            harness = Harness(n8n_source(f"http://127.0.0.1:{runner.addresses[0][1]}{N8N_PREFIX}"), session, clock)
            floor = clock.now + 15 - 3600  # the first cycle's initial_lookback
            for _ in range(4):
                clock.advance(15)
                assert await harness.poller.run_cycle()
            first_page = sorted(factory.sessions.values(), key=lambda s: int(s.id))[-250:]
            assert sum(s.status in ("error", "crashed") for s in first_page) > 3
            before = simulator.requests
            for _ in range(5):
                clock.advance(15)
                assert await harness.poller.run_cycle()
            assert simulator.requests - before == 5 * 3  # the list, status=running, status=waiting
    finally:
        await runner.cleanup()
    assert harness.finished() == sum(s.started_at >= floor for s in factory.sessions.values()) > 1000
