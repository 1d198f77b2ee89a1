"""The command line, run as users run it: a subprocess."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from agent_session_exporter.demo.runner import DEMO_SOURCES

from .helpers import ROOT, parse_exposition, run, total_of


def test_check_config_accepts_the_example():
    env = {
        v: "x" * 8
        for v in ("WHATABOT_API_KEY", "DIFY_API_KEY", "HH_API_KEY", "KAPSO_API_KEY", "N8N_API_KEY", "SYNTROPIC_PASSWORD")
    }
    result = run("--config", "config.example.yaml", "--check-config", env=env)
    assert result.returncode == 0, result.stderr
    assert "config OK: 6 sources" in result.stdout


def test_check_config_names_the_offending_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("sources:\n  - {name: a, provider: dify, base_url: 'http://x', api_key: k, page_size: 0}\n")
    result = run("--config", str(bad), "--check-config")
    assert result.returncode == 2
    assert "source 'a': page_size:" in result.stderr


def test_check_config_never_echoes_a_secret_pasted_into_the_wrong_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("sources:\n  - {name: a, provider: dify, base_url: 'http://x', api_key: k, interval: sk-live-77aa99}\n")
    result = run("--config", str(bad), "--check-config")
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"config error: {bad}:2: source 'a': interval: must be a duration such as 30s, 10m or 24h"
    ]


def test_missing_config_file_is_a_clear_error(tmp_path):
    result = run("--config", str(tmp_path / "nope.yaml"), "--check-config")
    assert result.returncode == 2 and "cannot read config file" in result.stderr


def test_demo_once_prints_an_exposition_with_all_five_providers():
    result = run("--demo", "--once")
    assert result.returncode == 0, result.stderr[-2000:]
    samples = parse_exposition(result.stdout)
    for source, provider in DEMO_SOURCES.items():
        if provider == "honeyhive":  # counted once seen unchanged settle_after apart: one cycle shows them active
            assert total_of(samples, "agent_sessions_finished_total", source=source) == 0, source
            assert total_of(samples, "agent_sessions_active", source=source, provider=provider) > 0, source
        else:
            assert total_of(samples, "agent_sessions_finished_total", source=source, provider=provider) > 0, source
        assert total_of(samples, "agent_session_exporter_source_up", source=source) == 1


def test_demo_serves_metrics_and_stops_cleanly_on_sigterm():
    process = subprocess.Popen(
        [sys.executable, "-m", "agent_session_exporter", "--demo", "--listen", "127.0.0.1:0"],
        cwd=ROOT,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    try:
        url = None
        deadline = time.monotonic() + 30
        while url is None and time.monotonic() < deadline:
            line = process.stderr.readline()
            if not line:
                break
            event = json.loads(line)
            if event["msg"] == "listening":
                url = event["url"]
        assert url and url.startswith("http://127.0.0.1:")
        text = ""
        for _ in range(50):  # bounded: up to ~10 s for the first cycle to land
            text = urllib.request.urlopen(url, timeout=5).read().decode()
            if "agent_sessions_finished_total{" in text:
                break
            time.sleep(0.2)
        assert total_of(parse_exposition(text), "agent_sessions_finished_total") > 0
        for _ in range(50):  # bounded: ~10 s; the Syntropic137 source reads its simulator's activity feed
            samples = parse_exposition(urllib.request.urlopen(url, timeout=5).read().decode())
            if total_of(samples, "agent_session_exporter_push_stream_connected", source="demo-syntropic") == 1:
                break
            time.sleep(0.2)
        assert total_of(samples, "agent_session_exporter_push_stream_connected", source="demo-syntropic") == 1
        process.send_signal(signal.SIGTERM)  # while it is connected: it ends with the rest
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=5)
        process.stderr.close()


@pytest.mark.parametrize("flag", ["--listen", "--listen=nope"])
def test_bad_listen_is_refused(flag):
    args = ["--demo", "--check-config"] + (["--listen", "nope"] if flag == "--listen" else [flag])
    result = run(*args)
    assert result.returncode in (2,) and "listen" in result.stderr


def test_production_start_never_loads_the_simulators(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("sources:\n  - {name: s, provider: syntropic137, base_url: 'http://127.0.0.1:9'}\n")
    probe = (
        "import sys; from agent_session_exporter.cli import main; main(['--config.file', sys.argv[1], '--check-config']); "
        "print(sorted(m for m in sys.modules if m.startswith('agent_session_exporter.demo')))"
    )
    result = subprocess.run([sys.executable, "-c", probe, str(config)], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.stdout.splitlines()[-1] == "[]", result.stderr


def test_log_level_warn_is_the_prometheus_spelling_of_warning(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("sources:\n  - {name: a, provider: dify, base_url: 'http://127.0.0.1:1', api_key: k, retries: 0}\n")
    result = run("--config.file", str(config), "--once", "--log.level", "warn", "--log.format", "json")
    assert result.returncode == 1  # the source cannot be read: a warning line, and no info line
    levels = {json.loads(line)["level"] for line in result.stderr.splitlines() if line.startswith("{")}
    assert "warning" in levels or "error" in levels
    assert not levels & {"info", "debug"}, levels


@pytest.mark.parametrize("check", [True, False])
def test_a_state_path_in_a_missing_directory_is_refused_by_name(tmp_path, check):
    """It would otherwise start a fresh state silently (a typo in a mount path costs every count)."""
    config = tmp_path / "c.yaml"
    config.write_text(
        f"state_path: {tmp_path / 'no-such-dir' / 'state.db'}\n"
        "sources:\n  - {name: a, provider: dify, base_url: 'http://127.0.0.1:1', api_key: k}\n"
    )
    result = run("--config.file", str(config), *(["--check-config"] if check else ["--once"]))
    assert result.returncode == 2, result.stderr[-500:]
    assert result.stderr.splitlines() == [
        "config error: state_path: its directory does not exist (it is never created: a typo would otherwise start counting anew)"
    ]
    assert not (tmp_path / "no-such-dir").exists()


def test_the_demo_pushes_kapso_webhooks_to_its_own_listener(tmp_path):
    """--demo turns the webhook listener on (here at the address given) and its Kapso simulator pushes
    to it: executions are looked up between polls, and an unsigned push is refused and counted."""
    log = tmp_path / "exporter.log"
    with open(log, "w") as stderr:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "agent_session_exporter",
                "--demo",
                "--listen",
                "127.0.0.1:0",
                "--web.webhook-address",
                "127.0.0.1:0",
                "--log.format",
                "json",
            ],
            cwd=ROOT,
            stderr=stderr,
            stdout=subprocess.DEVNULL,
        )
    try:
        urls: dict[str, str] = {}
        for _ in range(300):  # bounded: 30 s
            for line in log.read_text().splitlines():
                event = json.loads(line)
                if event["msg"] in ("listening", "listening for webhooks"):
                    urls[event["msg"]] = event["url"]
            if len(urls) == 2:
                break
            time.sleep(0.1)
        webhook = urls["listening for webhooks"].replace("<source>", "demo-kapso")
        assert webhook.startswith("http://127.0.0.1:")
        request = urllib.request.Request(webhook, data=b'{"workflow_execution_id": "x"}', method="POST")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=5)
        assert refused.value.code == 401
        samples: dict = {}
        for _ in range(200):  # bounded: ~40 s for the simulator's first pushes and their lookups
            samples = parse_exposition(urllib.request.urlopen(urls["listening"], timeout=5).read().decode())
            if total_of(samples, "agent_session_exporter_cycle_requests_total", source="demo-kapso", kind="push") > 0:
                break
            time.sleep(0.2)
        assert total_of(samples, "agent_session_exporter_pushes_total", source="demo-kapso", outcome="accepted") > 0
        assert total_of(samples, "agent_session_exporter_pushes_total", source="demo-kapso", outcome="bad_signature") == 1
        assert total_of(samples, "agent_session_exporter_cycle_requests_total", source="demo-kapso", kind="push") > 0
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=5)


def test_a_bad_webhook_address_is_refused():
    result = run("--demo", "--check-config", "--web.webhook-address", "nope")
    assert result.returncode == 2 and "--web.webhook-address: must be HOST:PORT" in result.stderr
