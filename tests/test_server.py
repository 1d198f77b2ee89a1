"""The HTTP face: content negotiation, the self-metrics a fresh exporter shows, the flags."""

from __future__ import annotations

import gzip

import aiohttp
import pytest
from aiohttp import web
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics

from agent_session_exporter import __version__
from agent_session_exporter.app import Exporter
from agent_session_exporter.config import parse_config
from agent_session_exporter.serve.selfmetric_families import DROP_REASONS, INVALID_REASONS
from agent_session_exporter.serve.server import make_app

from .helpers import parse_exposition, run

OPENMETRICS = "application/openmetrics-text; version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"


@pytest.fixture
async def served():
    config = parse_config(
        {"sources": [{"name": "s", "provider": "syntropic137", "base_url": "http://127.0.0.1:1", "retries": 0, "timeout": 0.5}]},
        {},
    )
    exporter = Exporter(config)
    await exporter.open()
    runner = web.AppRunner(make_app(exporter, telemetry_path="/custom"), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield exporter, "http://{}:{}".format(*runner.addresses[0][:2])
    finally:
        await runner.cleanup()
        await exporter.close()


async def test_openmetrics_when_asked_classic_text_otherwise_and_gzip_when_accepted(served):
    exporter, url = served
    await exporter.run_once()
    async with aiohttp.ClientSession(auto_decompress=False) as client:
        async with client.get(url + "/custom", headers={"Accept": OPENMETRICS, "Accept-Encoding": "identity"}) as response:
            assert response.headers["Content-Type"].startswith("application/openmetrics-text")
            text = (await response.read()).decode()
        assert text.endswith("# EOF\n") and text.count("# EOF") == 1
        names = {family.name for family in parse_openmetrics(text)}
        assert "agent_session_exporter_source_up" in names and "process_cpu_seconds" in names
        async with client.get(url + "/custom", headers={"Accept-Encoding": "identity"}) as response:
            assert "Content-Encoding" not in response.headers
            assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            assert "# EOF" not in (await response.read()).decode()
        async with client.get(url + "/custom", headers={"Accept-Encoding": "gzip"}) as response:
            assert response.headers["Content-Encoding"] == "gzip"
            assert b"agent_session_exporter_build_info" in gzip.decompress(await response.read())
        async with client.get(url + "/metrics") as response:
            assert response.status == 404  # the telemetry path moved


async def test_a_fresh_exporter_shows_build_info_and_every_known_series_at_zero(served):
    exporter, _ = served
    samples = parse_exposition(exporter.render_metrics().decode())
    info = [dict(labels) for name, labels in samples if name == "agent_session_exporter_build_info"]
    assert len(info) == 1 and info[0]["version"] == __version__ and info[0]["python_version"]
    for reason in INVALID_REASONS:
        key = (
            "agent_session_exporter_invalid_records_total",
            frozenset({"source": "s", "provider": "syntropic137", "reason": reason}.items()),
        )
        assert samples[key] == 0, reason
    for reason in DROP_REASONS:
        assert (
            samples[
                (
                    "agent_session_exporter_pending_dropped_total",
                    frozenset({"source": "s", "provider": "syntropic137", "reason": reason}.items()),
                )
            ]
            == 0
        )
    assert samples[("agent_session_exporter_config_last_reload_successful", frozenset())] == 1


async def test_a_connection_error_names_host_port_and_reason(served, logs):
    exporter, _ = served
    await exporter.run_once()
    assert "cannot connect to 127.0.0.1:1: " in exporter.pollers["s"].last_result
    assert [line["error"] for line in logs("warning")][0].startswith("GET /sessions: cannot connect to 127.0.0.1:1: ")


@pytest.mark.parametrize(
    "args",
    [
        ["--config.file", "config.example.yaml", "--check-config"],
        ["--config", "config.example.yaml", "--check-config"],
        ["--check-config", "config.example.yaml"],
        ["--demo", "--check-config"],
    ],
)
def test_check_config_takes_its_file_any_way_the_flags_give_it(args):
    env = {
        v: "x" for v in ("WHATABOT_API_KEY", "DIFY_API_KEY", "HH_API_KEY", "KAPSO_API_KEY", "N8N_API_KEY", "SYNTROPIC_PASSWORD")
    }
    result = run(*args, env=env)
    assert result.returncode == 0 and result.stdout.startswith("config OK:"), result.stderr


def test_version_prints_version_and_python():
    result = run("--version")
    assert result.stdout.startswith(f"agent-session-exporter {__version__} (Python 3.")


def test_log_flags_in_both_spellings():
    for args in (["--log.format", "logfmt", "--log.level", "debug"], ["--log-format", "logfmt", "--log-level", "debug"]):
        result = run("--demo", "--check-config", *args)
        assert result.returncode == 0, result.stderr
    assert run("--demo", "--check-config", "--log.level", "loud").returncode == 2
