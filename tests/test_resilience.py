"""Every upstream fault at once, against the real exporter on loopback: exact totals, no delays, no leaks."""

from __future__ import annotations

import asyncio
import io
import itertools
import time
from typing import Any

import aiohttp
from aiohttp import web

from agent_session_exporter.app import Exporter
from agent_session_exporter.config import parse_config
from agent_session_exporter.demo.runner import running_simulators
from agent_session_exporter.demo.server import HONEYHIVE_PROJECT, KAPSO_WORKFLOWS, PREFIXES, Simulators
from agent_session_exporter.logs import configure_logging
from agent_session_exporter.serve.server import make_app
from agent_session_exporter.timeparse import to_iso

from .helpers import parse_exposition, scrape_after_more_cycles, total_of

SECRETS = {
    "whatabot": "wh_SECRET_whatabot_91f3",
    "dify": "app-SECRET_dify_28cc",
    "honeyhive": "hh_SECRET_honey_0b1d",
    "kapso": "kp_SECRET_kapso_4e4e",
    "n8n": "n8n_api_SECRET_n8n_3c3c",
}
WRONG_KEY = "wh_SECRET_wrong_77aa"
HUGE_KEY = "app-SECRET_huge_5521"
SYNTROPIC_PASSWORD = "SECRET_gateway_pw_1234"
INTERVAL = 1.0


def every(n: int):
    counter = itertools.count(1)
    return lambda: next(counter) % n == 0


def install_faults(simulators: Simulators) -> None:
    whatabot_429, dify_500, syntropic_slow, honeyhive_cut, n8n_500 = every(4), every(3), every(4), every(5), every(4)

    def whatabot(request: web.Request) -> Any:
        if request.headers.get("X-Api-Key") != SECRETS["whatabot"]:
            return None
        return web.json_response({"error": "slow down"}, status=429, headers={"Retry-After": "1"}) if whatabot_429() else None

    async def dify(request: web.Request) -> Any:
        if request.headers.get("Authorization") == f"Bearer {HUGE_KEY}":
            response = web.StreamResponse(headers={"Content-Type": "application/json"})
            await response.prepare(request)
            try:
                for _ in range(50):  # 50 MiB, chunked: no Content-Length to refuse it early
                    await response.write(b" " * (1 << 20))
            except Exception:  # noqa: BLE001 - the client hangs up at its cap, as it should
                pass
            return response
        return web.json_response({"message": "internal error"}, status=500) if dify_500() else None

    async def syntropic(request: web.Request) -> Any:
        if syntropic_slow():
            await asyncio.sleep(1.5)  # beyond the source's 0.5 s timeout
        return None

    def honeyhive(request: web.Request) -> Any:
        return web.Response(body=b'{"events": [{"children": [', content_type="application/json") if honeyhive_cut() else None

    def n8n(request: web.Request) -> Any:
        return web.json_response({"message": "Internal Server Error"}, status=500) if n8n_500() else None

    simulators.faults.update(whatabot=whatabot, dify=dify, syntropic137=syntropic, honeyhive=honeyhive, n8n=n8n)

    started = to_iso(time.time())

    def whatabot_items(page: dict) -> dict:
        page["content"] += [
            {"id": "archived-1", "status": "archived", "startedAt": started, "finishedAt": started, "warnings": 0},
            {"id": "null-1", "status": "completed", "startedAt": None, "finishedAt": None, "warnings": None},
        ]
        return page

    def honeyhive_items(answer: dict) -> dict:
        # Bad items, and a count that says less than there is: the search's count is never trusted.
        return {
            **answer,
            "events": answer["events"] + [None, {"session_id": "nulls", "start_time": None, "end_time": None, "metadata": None}],
            "count": 1,
        }

    simulators.mutators.update(whatabot=whatabot_items, honeyhive=honeyhive_items)


def config_for(base_url: str) -> Any:
    def source(name: str, provider: str, **extra: Any) -> dict[str, Any]:
        return {
            "name": name,
            "provider": provider,
            "base_url": base_url + PREFIXES[provider],
            "interval": INTERVAL,
            "timeout": 0.5,
            "initial_lookback": "1h",
            "overlap": "1m",
            **extra,
        }

    return parse_config(
        {
            "sources": [
                source("wb", "whatabot", api_key=SECRETS["whatabot"]),
                source("dy", "dify", api_key=SECRETS["dify"]),
                source("sy", "syntropic137", basic_auth={"username": "exporter", "password": SYNTROPIC_PASSWORD}),
                source("hh", "honeyhive", api_key=SECRETS["honeyhive"], project=HONEYHIVE_PROJECT, settle_after=0.5),
                source("ka", "kapso", api_key=SECRETS["kapso"], workflow_ids=list(KAPSO_WORKFLOWS)),
                source("n8", "n8n", api_key=SECRETS["n8n"]),
                source("bad-key", "whatabot", api_key=WRONG_KEY),
                source("huge", "dify", api_key=HUGE_KEY),
                {
                    "name": "refused",
                    "provider": "syntropic137",
                    "base_url": "http://127.0.0.1:1",
                    "interval": INTERVAL,
                    "basic_auth": {"username": "exporter", "password": SYNTROPIC_PASSWORD},
                    "retries": 1,
                },
            ]
        },
        {},
    )


async def test_every_fault_at_once_keeps_totals_exact_and_other_sources_on_time():
    logs = io.StringIO()
    configure_logging("debug", json=True, stream=logs)
    simulators = Simulators(rate=2.0, min_duration=0.2, max_duration=2.0, keys=SECRETS)
    install_faults(simulators)
    async with running_simulators(simulators, tick_every=0.05) as base_url:
        exporter = Exporter(config_for(base_url))
        await exporter.open()
        runner = web.AppRunner(make_app(exporter), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        url = "http://{}:{}".format(*runner.addresses[0][:2])
        try:
            exporter.start()
            async with aiohttp.ClientSession() as client:

                async def scrape(path: str = "/metrics") -> str:
                    async with client.get(url + path) as response:
                        return await response.text()

                for _ in range(25):  # 5 s of traffic and faults
                    await scrape()
                    await asyncio.sleep(0.2)
                for factory in simulators.factories.values():
                    factory.rate = 0
                simulators.finish_all()
                truth = {p: sum(f.truth.finished.values()) for p, f in simulators.factories.items()}
                names = {"whatabot": "wb", "dify": "dy", "syntropic137": "sy", "honeyhive": "hh", "kapso": "ka", "n8n": "n8"}
                samples: dict = {}
                for _ in range(100):  # bounded: ~20 s
                    samples = parse_exposition(await scrape())
                    if all(
                        total_of(samples, "agent_sessions_finished_total", source=names[p]) - (p == "whatabot") >= n
                        for p, n in truth.items()
                    ):
                        break
                    await asyncio.sleep(0.2)
                # Two more cycles of every source: nothing may be counted twice.
                samples = await scrape_after_more_cycles(client, url + "/metrics", samples)
                landing = await scrape("/")
        finally:
            await runner.cleanup()
            await exporter.close()
    configure_logging("debug", json=True)

    # Exact session totals despite 429s, 500s, timeouts, truncated pages and bad items.
    for provider, factory in simulators.factories.items():
        source = names[provider]
        assert sum(factory.truth.finished.values()) > 5, provider
        for (status, outcome), count in factory.truth.finished.items():
            assert total_of(samples, "agent_sessions_finished_total", source=source, status=status, outcome=outcome) == count, (
                provider,
                status,
                outcome,
            )
        assert total_of(samples, "agent_session_errors_total", source=source) == factory.truth.errors
        for kind, value in factory.truth.tokens.items():
            assert total_of(samples, "agent_session_tokens_total", source=source, token_type=kind) == value
        assert total_of(samples, "agent_sessions_active", source=source) == 0
    # What the faults left behind, in the self-metrics.
    metric = "agent_session_exporter_requests_total"
    assert total_of(samples, metric, source="wb", code="429") > 0
    assert total_of(samples, "agent_session_exporter_retries_total", source="wb") > 0
    assert total_of(samples, metric, source="dy", code="500") > 0
    assert total_of(samples, metric, source="sy", code="timeout") > 0
    assert total_of(samples, metric, source="hh", code="invalid_json") > 0
    assert total_of(samples, metric, source="n8", code="500") > 0
    assert total_of(samples, "agent_session_exporter_invalid_records_total", source="hh", reason="not_an_object") > 0
    assert total_of(samples, "agent_session_exporter_invalid_records_total", source="hh", reason="missing_field") > 0
    assert total_of(samples, "agent_session_exporter_invalid_records_total", source="wb", reason="missing_field") > 0
    assert total_of(samples, "agent_sessions_finished_total", source="wb", status="archived", outcome="unknown") == 1
    assert total_of(samples, "agent_session_exporter_unknown_status_total", source="wb", status="archived") == 1
    # A wrong key: down, 401 counted, never retried. A 50 MiB answer: refused at the cap.
    assert total_of(samples, "agent_session_exporter_source_up", source="bad-key") == 0
    assert total_of(samples, metric, source="bad-key", code="401") > 0
    assert total_of(samples, "agent_session_exporter_retries_total", source="bad-key") == 0
    assert total_of(samples, "agent_session_exporter_source_up", source="huge") == 0
    assert total_of(samples, metric, source="huge", code="too_large") > 0
    assert total_of(samples, metric, source="refused", code="connection") > 0
    # No secret anywhere: logs, metrics, landing page.
    log_text = logs.getvalue()
    assert "credentials refused" in log_text and "unknown session status" in log_text
    exposition = "\n".join(f"{k} {v}" for k, v in samples.items())
    for secret in [*SECRETS.values(), WRONG_KEY, HUGE_KEY, SYNTROPIC_PASSWORD]:
        assert secret not in log_text and secret not in exposition and secret not in landing, secret
