"""The proof that the spec language is general: Vapi's calls, declared in ``tests/specs/vapi.yaml`` from
Vapi's API reference alone, counted exactly against a simulator written from the same docs by someone
who never saw that spec (``tests/sims/vapi.py``; its facts and choices in ``tests/sims/vapi_docs.md``)."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest

from agent_session_exporter.config import parse_config
from agent_session_exporter.keep.sqlite import SqliteStore

from .helpers import FakeClock, Harness
from .sims.vapi import VapiSim

SPEC = Path(__file__).resolve().parent / "specs" / "vapi.yaml"
OUTCOMES = ("success", "error", "timeout", "cancelled")


def vapi_source(base_url: str, key: str, **overrides: object):
    entry = {
        "name": "vapi-calls",
        "provider": "custom",
        "spec_file": str(SPEC),
        "base_url": base_url,
        "api_key": key,
        "initial_lookback": "1h",
        "overlap": "1m",
        **overrides,
    }
    return parse_config({"sources": [entry]}, {}).sources[0]


async def test_a_user_spec_counts_vapis_calls_exactly_across_a_restart(tmp_path):
    """Small pages (37 calls) and ties served in a new order on each request, a burst of 150 calls in one
    second every 10 minutes, calls that run for minutes and end later, and a restart halfway."""
    clock = FakeClock()
    sim = VapiSim(clock=clock, seed=11, rate=0.5, history=600, burst_every=600, burst_size=150, tie_order="shuffle")
    state = tmp_path / "state.db"
    async with sim.serve() as base_url, aiohttp.ClientSession() as session:
        source = vapi_source(base_url, sim.key, page_size=37)
        for _ in range(2):  # the second run is a restart on the same state file
            store = SqliteStore(str(state), {source.name: source.provider})
            harness = Harness(source, session, clock, store=store)
            for _cycle in range(20):  # 10 minutes at a 30 s interval
                clock.advance(30)
                assert await harness.poller.run_cycle()
            store.close()
        truth = sim.ground_truth(clock.now)
        counted = {o: harness.finished(outcome=o) for o in OUTCOMES}
        assert counted == {o: truth.by_outcome[o].count for o in OUTCOMES}
        assert sum(counted.values()) > 500 and all(counted.values())
        for outcome in OUTCOMES:
            expected = truth.by_outcome[outcome]
            assert harness.value("agent_session_duration_seconds_count", outcome=outcome) == expected.duration_count
            assert harness.value("agent_session_duration_seconds_sum", outcome=outcome) == pytest.approx(
                expected.duration_ms / 1000, rel=1e-9
            )
        cost = sum(truth.by_outcome[o].cost_micros for o in OUTCOMES) / 1e6
        assert harness.value("agent_session_cost_usd_total") == pytest.approx(cost, rel=1e-9)
        tokens = sum((truth.by_outcome[o].tokens for o in OUTCOMES), start=type(truth.by_outcome["error"].tokens)())
        assert harness.value("agent_session_tokens_total", token_type="input") == tokens["llmPromptTokens"]
        assert harness.value("agent_session_tokens_total", token_type="output") == tokens["llmCompletionTokens"]
        assert harness.value("agent_session_tokens_total", token_type="cache_read") == tokens["llmCachedPromptTokens"]
        assert harness.value("agent_sessions_active") == sum(truth.active.values())
