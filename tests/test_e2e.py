"""The whole exporter against the five simulators on 127.0.0.1: scrape /metrics, check against the truth."""

from __future__ import annotations

import aiohttp
import pytest
from aiohttp import web
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from agent_session_exporter.app import Exporter
from agent_session_exporter.demo.runner import DEMO_SOURCES, demo_config, running_simulators
from agent_session_exporter.demo.server import KAPSO_WORKFLOW_NAMES, Simulators
from agent_session_exporter.serve.server import make_app

from .helpers import parse_exposition, total_of

SETTLE = 10.0


async def scrape(url: str) -> tuple[str, str]:
    async with aiohttp.ClientSession() as client:
        async with client.get(url) as response:
            assert response.status == 200
            return response.headers["Content-Type"], await response.text()


@pytest.fixture
async def stack(clock):
    """Simulators and exporter on loopback ports chosen by the OS, sharing one fake clock."""
    simulators = Simulators(clock=clock, rate=0.5)
    simulators.backfill(900)
    async with running_simulators(simulators, tick_every=None) as base_url:
        config = demo_config(base_url, listen="127.0.0.1:0")
        exporter = Exporter(config, clock=clock)
        await exporter.open()
        runner = web.AppRunner(make_app(exporter), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        try:
            yield simulators, exporter, f"http://{host}:{port}"
        finally:
            await runner.cleanup()
            await exporter.close()


async def test_metrics_match_what_the_simulators_served(stack, clock):
    simulators, exporter, url = stack
    for _ in range(12):
        clock.advance(5)
        simulators.tick()
        assert all((await exporter.run_once()).values())
    _, text = await scrape(url + "/metrics")
    samples = parse_exposition(text)
    for source, provider in DEMO_SOURCES.items():
        factory = simulators.factories[provider]
        running = sum(1 for s in factory.sessions.values() if s.running)
        if provider != "honeyhive":  # honeyhive sessions also wait settle_after after their end
            assert total_of(samples, "agent_sessions_active", source=source) == running, provider
            assert total_of(samples, "agent_sessions_finished_total", source=source) == sum(factory.truth.finished.values())

    # The real behaviours are exercised: Kapso executions that ended after a handoff, stopped Dify
    # runs with a stop reason, Syntropic137 orphans without a duration.
    kapso = simulators.factories["kapso"].sessions.values()
    assert any(s.handed_off and not s.running for s in kapso)
    assert simulators.factories["dify"].truth.finished[("stopped", "cancelled")] > 0
    assert any(s.error and s.error.startswith("Orphaned") for s in simulators.factories["syntropic137"].sessions.values())

    # End everything; HoneyHive's final end times are seen, then seen unchanged settle_after later
    # (the settle clock is the exporter's own); compare every counter exactly.
    simulators.finish_all()
    for _ in range(2):
        clock.advance(SETTLE + 1)
        assert all((await exporter.run_once()).values())
    content_type, text = await scrape(url + "/metrics")
    assert content_type.startswith("text/plain")
    samples = parse_exposition(text)
    for source, provider in DEMO_SOURCES.items():
        truth = simulators.factories[provider].truth
        assert sum(truth.finished.values()) > 100
        for (status, outcome), count in truth.finished.items():
            assert (
                total_of(
                    samples, "agent_sessions_finished_total", source=source, provider=provider, status=status, outcome=outcome
                )
                == count
            ), (provider, status, outcome)
        assert total_of(samples, "agent_sessions_finished_total", source=source) == sum(truth.finished.values())
        assert total_of(samples, "agent_sessions_active", source=source) == 0
        assert total_of(samples, "agent_session_errors_total", source=source) == truth.errors
        assert total_of(samples, "agent_session_warnings_total", source=source) == truth.warnings
        for kind, value in truth.tokens.items():
            assert total_of(samples, "agent_session_tokens_total", source=source, token_type=kind) == value
        for model, value in truth.cost.items():
            assert total_of(samples, "agent_session_cost_usd_total", source=source, model=model) == pytest.approx(value)
        assert total_of(samples, "agent_session_duration_seconds_count", source=source) == truth.durations
        assert total_of(samples, "agent_session_duration_seconds_sum", source=source) == pytest.approx(
            truth.duration_sum, rel=0.01
        )
        assert total_of(samples, "agent_session_exporter_source_up", source=source) == 1
    _, used_this_minute = simulators.kapso_minute
    assert total_of(samples, "agent_session_exporter_rate_limit_remaining", source="demo-kapso") == 1000 - used_this_minute


async def test_healthz_and_landing_page(stack):
    simulators, exporter, url = stack
    await exporter.run_once()
    async with aiohttp.ClientSession() as client:
        async with client.get(url + "/healthz") as response:
            assert response.status == 200
        async with client.get(url + "/") as response:
            page = await response.text()
    assert "/metrics" in page
    for name in exporter.pollers:
        assert name in page
    assert "ok:" in page


async def test_scrape_never_calls_upstream(stack):
    simulators, exporter, url = stack
    await exporter.run_once()
    before = sum(simulators.requests.values())
    for _ in range(5):
        await scrape(url + "/metrics")
    assert sum(simulators.requests.values()) == before


async def test_from_a_series_to_the_session_it_counted(stack, clock):
    """Per-workflow series and names, an exemplar naming a session the simulators served, the
    redirect to that session's page, and the latest failures on the landing page."""
    simulators, exporter, url = stack
    for _ in range(6):
        clock.advance(5)
        simulators.tick()
        assert all((await exporter.run_once()).values())
    async with aiohttp.ClientSession() as client:
        async with client.get(url + "/metrics", headers={"Accept": "application/openmetrics-text"}) as response:
            assert response.headers["Content-Type"].startswith("application/openmetrics-text")
            text = await response.text()
        exemplars = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.exemplar is not None:
                    exemplars.setdefault(sample.labels["source"], []).append(sample)
        kapso = simulators.factories["kapso"].sessions
        assert set(exemplars) == set(DEMO_SOURCES)  # every source carries exemplars
        for sample in exemplars["demo-kapso"]:
            session = kapso[sample.exemplar.labels["session_id"]]  # a session the simulator really served
            assert not session.running and sample.labels["workflow"] == session.workflow_id
        session_id = exemplars["demo-kapso"][0].exemplar.labels["session_id"]
        async with client.get(f"{url}/sessions/demo-kapso/{session_id}", allow_redirects=False) as response:
            assert response.status == 302
            assert response.headers["Location"].endswith(
                f"/ui/kapso/workflows/{kapso[session_id].workflow_id}/executions/{session_id}"
            )
        async with client.get(f"{url}/sessions/demo-kapso/{session_id}") as response:
            assert response.status == 200 and session_id in await response.text()  # the simulator's page
        async with client.get(url + "/") as response:
            page = await response.text()
    samples = parse_exposition(text.replace("# EOF\n", ""))
    # Kapso's workflows were discovered: each one's finished sessions, under its id, and its name.
    for workflow_id, name in KAPSO_WORKFLOW_NAMES.items():
        finished = sum(1 for s in kapso.values() if not s.running and s.workflow_id == workflow_id)
        assert finished > 0
        assert total_of(samples, "agent_sessions_finished_total", source="demo-kapso", workflow=workflow_id) == finished
        assert (
            total_of(samples, "agent_session_workflow_info", source="demo-kapso", workflow=workflow_id, workflow_name=name) == 1
        )
    assert total_of(samples, "agent_sessions_finished_total", source="demo-dify", workflow="") > 0
    failed = max((s for s in kapso.values() if s.status == "failed"), key=lambda s: s.ended_at or 0)
    assert "Recent failures: demo-kapso" in page and failed.id in page
    assert f"/sessions/demo-kapso/{failed.id}?workflow={failed.workflow_id}" in page
