"""The serving side: TLS and basic auth from --web.config.file, SIGHUP reload, label caps."""

from __future__ import annotations

import json
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import bcrypt
import pytest
import trustme
import yaml

from .helpers import parse_exposition

ROOT = Path(__file__).resolve().parent.parent


class Exporter:
    """The exporter as a subprocess, its JSON log in a file."""

    def __init__(self, tmp_path: Path, *args: str) -> None:
        self.log_path = tmp_path / f"exporter-{time.monotonic_ns()}.log"
        self.log = open(self.log_path, "w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "agent_session_exporter", "--listen", "127.0.0.1:0", *args],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=self.log,
        )
        self.url = self.wait_for("listening")["url"]

    def events(self) -> list[dict]:
        return [json.loads(line) for line in self.log_path.read_text().splitlines() if line.startswith("{")]

    def wait_for(self, event: str, timeout: float = 20) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for entry in self.events():
                if entry["msg"] == event:
                    return entry
            if self.process.poll() is not None:
                raise AssertionError(f"exporter exited: {self.log_path.read_text()[-2000:]}")
            time.sleep(0.05)
        raise AssertionError(f"no {event!r} log line within {timeout} s")

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=10)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait(timeout=5)
            self.log.close()


@pytest.fixture
def web_config(tmp_path):
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert.private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "server.pem"))
    hashed = bcrypt.hashpw(b"s3cret-scrape", bcrypt.gensalt(rounds=4)).decode()
    path = tmp_path / "web.yml"
    path.write_text(
        yaml.safe_dump(
            {
                "tls_server_config": {"cert_file": "server.pem", "key_file": "server.pem"},
                "basic_auth_users": {"prometheus": hashed},
            }
        )
    )
    return path, ca


def fetch(url: str, context: ssl.SSLContext, user: str | None = None, password: str | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url)
    if user is not None:
        import base64

        request.add_header("Authorization", "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=10, context=context) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, ""


def test_tls_and_basic_auth_protect_metrics_but_not_healthz(tmp_path, web_config):
    path, ca = web_config
    exporter = Exporter(tmp_path, "--demo", "--web.config.file", str(path))
    try:
        assert exporter.url.startswith("https://127.0.0.1:")
        trusting = ssl.create_default_context()
        ca.configure_trust(trusting)
        assert fetch(exporter.url, trusting)[0] == 401
        assert fetch(exporter.url, trusting, "prometheus", "wrong")[0] == 401
        assert fetch(exporter.url, trusting, "nobody", "s3cret-scrape")[0] == 401
        status, body = fetch(exporter.url, trusting, "prometheus", "s3cret-scrape")
        assert status == 200 and "agent_session_exporter_source_up" in body
        assert fetch(exporter.url.replace("/metrics", "/healthz"), trusting)[0] == 200
        with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):
            fetch(exporter.url, ssl.create_default_context(), "prometheus", "s3cret-scrape")
    finally:
        assert exporter.stop() == 0


def test_a_web_config_that_is_not_a_bcrypt_hash_is_refused(tmp_path):
    path = tmp_path / "web.yml"
    path.write_text("basic_auth_users:\n  prometheus: plaintext\n")
    result = subprocess.run(
        [sys.executable, "-m", "agent_session_exporter", "--demo", "--check-config", "--web.config.file", str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2 and "basic_auth_users.prometheus" in result.stderr


def test_sighup_reloads_the_config_and_refuses_a_bad_one(tmp_path):
    config = tmp_path / "config.yaml"

    def write(sources: list[dict]) -> None:
        config.write_text(yaml.safe_dump({"interval": 1, "sources": sources}))

    first = {"name": "one", "provider": "syntropic137", "base_url": "http://127.0.0.1:1", "retries": 0}
    write([first])
    exporter = Exporter(tmp_path, "--config", str(config))
    try:
        config.write_text("sources: [{name: broken, provider: nope}]\n")
        exporter.process.send_signal(signal.SIGHUP)
        refused = exporter.wait_for("config reload refused; the running config stays")
        assert "source 'broken'" in refused["error"]
        body = urllib.request.urlopen(exporter.url, timeout=10).read().decode()
        assert 'source="one"' in body
        assert "agent_session_exporter_config_last_reload_successful 0.0" in body
        write([{**first, "name": "two"}])
        exporter.process.send_signal(signal.SIGHUP)
        reloaded = exporter.wait_for("config reloaded")
        assert reloaded["removed"] == ["one"] and reloaded["sources"] == ["two"]
        samples = parse_exposition(urllib.request.urlopen(exporter.url, timeout=10).read().decode())
        assert (
            samples[("agent_session_exporter_source_up", frozenset({"source": "two", "provider": "syntropic137"}.items()))] == 0
        )
        assert not any(dict(labels).get("source") == "one" for _, labels in samples)
        assert samples[("agent_session_exporter_config_last_reload_successful", frozenset())] == 1
        assert samples[("agent_session_exporter_config_last_reload_success_timestamp_seconds", frozenset())] > 1e9
    finally:
        assert exporter.stop() == 0
