"""Hostile clients, signals and config (issue #10, defects 9-13): the HTTP port stays answerable,
reloads stay serial, and no secret is echoed. Then the listener's bounded cost per client (rows 4
and 12 of the adversarial review): clients that never read, pipelined floods, the reserve past the
connection cap, TLS handshakes counted, accept errors logged once a second."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import re
import resource
import socket
import ssl
import threading
import time
from datetime import datetime
from pathlib import Path

import aiohttp
import bcrypt
import pytest
import trustme
import yaml
from aiohttp import web

from agent_session_exporter.app import Exporter
from agent_session_exporter.config import ConfigError, load_config, parse_config
from agent_session_exporter.logs import configure_logging
from agent_session_exporter.serve import webconfig
from agent_session_exporter.serve.listener import ConnectionGuard, listen
from agent_session_exporter.serve.webconfig import basic_auth_middleware

from .helpers import parse_exposition, run


async def serve(app: web.Application, guard: ConnectionGuard, ssl_context: ssl.SSLContext | None = None):
    runner = web.AppRunner(app, access_log=None, keepalive_timeout=30)
    await runner.setup()
    server, address = await listen(runner, guard, "127.0.0.1", 0, ssl_context)
    return runner, server, f"{'https' if ssl_context else 'http'}://127.0.0.1:{address[1]}"


def hello_app(*middlewares, metrics_body: bytes = b"ok") -> web.Application:
    async def ok(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def metrics(request: web.Request) -> web.Response:
        return web.Response(body=metrics_body)

    app = web.Application(middlewares=list(middlewares))
    app.router.add_get("/healthz", ok)
    app.router.add_get("/metrics", metrics)
    return app


class Refused(list):
    """The guard's ``on_refused``: the reasons it reported, and a bounded wait for one."""

    def __init__(self) -> None:
        super().__init__()
        self.changed = asyncio.Event()

    def __call__(self, reason: str) -> None:
        self.append(reason)
        self.changed.set()

    async def wait_for(self, reason: str, count: int = 1, timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout):
            while self.count(reason) < count:
                self.changed.clear()
                await self.changed.wait()


GET = b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n"


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


# 9 -------------------------------------------------------------------------------------------


async def test_bcrypt_runs_off_the_event_loop_costs_the_same_for_unknown_users_and_is_cached(monkeypatch):
    checks: list[tuple[bytes, str]] = []
    real_check = bcrypt.checkpw

    def recording_check(password: bytes, hashed: bytes) -> bool:
        checks.append((hashed, threading.current_thread().name))
        return real_check(password, hashed)

    monkeypatch.setattr(webconfig.bcrypt, "checkpw", recording_check)
    hashed = bcrypt.hashpw(b"right", bcrypt.gensalt(rounds=4))
    guard = ConnectionGuard()
    runner, server, url = await serve(hello_app(guard.middleware, basic_auth_middleware({"prom": hashed})), guard)
    try:
        async with aiohttp.ClientSession() as client:
            statuses = await asyncio.gather(*(client.get(url + "/metrics", headers=basic("prom", "wrong")) for _ in range(8)))
            assert [r.status for r in statuses] == [401] * 8
            async with client.get(url + "/metrics", headers=basic("nobody", "x")) as response:
                assert response.status == 401
            for _ in range(3):
                async with client.get(url + "/metrics", headers=basic("prom", "right")) as response:
                    assert response.status == 200
            async with client.get(url + "/healthz") as response:
                assert response.status == 200
    finally:
        server.close()
        await runner.cleanup()
    threads = {name for _, name in checks}
    assert threads and all(name.startswith("bcrypt") for name in threads)  # never the event loop's thread
    # 8 wrong + 1 unknown user (checked against a decoy hash of the same cost) + 1 right, then cached.
    assert len(checks) == 10
    decoy = [h for h, _ in checks if h != hashed]
    assert len(decoy) == 1 and decoy[0].split(b"$")[2] == hashed.split(b"$")[2]


# 10 ------------------------------------------------------------------------------------------


async def test_idle_connections_are_closed_and_past_the_limit_refused():
    refused: list[str] = []
    guard = ConnectionGuard(max_connections=4, header_timeout=0.5, on_refused=refused.append, reserve=2)
    runner, server, url = await serve(hello_app(guard.middleware), guard)
    port = int(url.rsplit(":", 1)[1])
    try:
        idle = [await asyncio.open_connection("127.0.0.1", port) for _ in range(4 + 2)]  # the cap, then the reserve
        extra_reader, extra_writer = await asyncio.open_connection("127.0.0.1", port)
        assert await asyncio.wait_for(extra_reader.read(), 5) == b""  # refused at once
        extra_writer.close()
        for reader, _ in idle:  # never sent a request: closed after the header timeout
            assert await asyncio.wait_for(reader.read(), 5) == b""
        async with aiohttp.ClientSession() as client:
            async with client.get(url + "/healthz") as response:
                assert response.status == 200
            await asyncio.sleep(0.8)  # a served keep-alive connection outlives the header timeout
            async with client.get(url + "/healthz") as response:
                assert response.status == 200
        for _, writer in idle:
            writer.close()
    finally:
        server.close()
        await runner.cleanup()
    assert refused.count("max_connections") == 1 and refused.count("header_timeout") == 6


async def test_every_reason_a_connection_is_refused_is_a_series_from_the_start():
    exporter = Exporter(
        parse_config({"sources": [{"name": "a", "provider": "syntropic137", "base_url": "http://127.0.0.1:9"}]}, {})
    )
    await exporter.open()
    try:
        exporter.connection_refused("write_timeout")
        samples = parse_exposition(exporter.render_metrics().decode())
    finally:
        await exporter.close()
    refused = {
        dict(labels)["reason"]: value
        for (name, labels), value in samples.items()
        if name == "agent_session_exporter_web_connections_refused_total"
    }
    assert refused == {"max_connections": 0, "header_timeout": 0, "write_timeout": 1, "max_pipelined": 0}


# 11 ------------------------------------------------------------------------------------------


async def test_library_loggers_go_through_the_redacting_json_pipeline():
    stream = io.StringIO()
    configure_logging("info", json=True, stream=stream)
    guard = ConnectionGuard()
    runner, server, url = await serve(hello_app(guard.middleware), guard)
    port = int(url.rsplit(":", 1)[1])
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\nAuthorization: Basic c2VjcmV0OnB3ZDEyMw==\x00\r\n\r\n")
        await writer.drain()
        assert (await asyncio.wait_for(reader.read(), 5)).startswith(b"HTTP/1.0 400")
        writer.close()
    finally:
        server.close()
        await runner.cleanup()
        configure_logging("debug", json=True)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert any(line.get("logger") == "aiohttp.server" for line in lines)  # the library's line is there
    assert "c2VjcmV0OnB3ZDEyMw" not in stream.getvalue()


# 12 ------------------------------------------------------------------------------------------


async def test_two_reloads_at_once_leave_exactly_the_configured_tasks():
    def config(*names: str):
        return parse_config(
            {
                "interval": 3600,
                "sources": [
                    {"name": n, "provider": "syntropic137", "base_url": "http://127.0.0.1:9", "retries": 0, "timeout": 0.2}
                    for n in names
                ],
            },
            {},
        )

    exporter = Exporter(config("a", "b"))
    await exporter.open()
    exporter.start()
    try:
        await asyncio.gather(exporter.reload(config("a", "c")), exporter.reload(config("a", "d")))
        polling = sorted(t.get_name() for t in asyncio.all_tasks() if t.get_name().startswith("source:"))
        assert polling == ["source:a", "source:d"]
        assert sorted(exporter.pollers) == ["a", "d"]
    finally:
        await exporter.close(grace=0.1)
    assert not [t for t in asyncio.all_tasks() if t.get_name().startswith("source:")]


# 13 ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "sources:\n  - name: a\n    provider: dify\n    api_key: sk-live-SECRET123 : oops\n",
        'sources:\n  - {name: a, provider: dify, api_key: "sk-live-SECRET123}\n',
        "sources:\n  - name: a\n    basic_auth: {username: u, password: sk-live-SECRET123\n",
    ],
)
def test_config_errors_never_echo_a_secret(tmp_path, text):
    path = tmp_path / "config.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert "sk-live-SECRET123" not in str(caught.value) and re.search(rf"{re.escape(str(path))}:\d+:\d+: ", str(caught.value))
    result = run("--config", str(path), "--check-config")
    assert result.returncode == 2 and "sk-live-SECRET123" not in result.stderr + result.stdout


# Row 4: clients that pipeline and never read -------------------------------------------------


async def test_clients_that_pipeline_and_never_read_are_dropped_after_the_write_timeout():
    refused = Refused()
    guard = ConnectionGuard(max_connections=2, on_refused=refused, reserve=0, write_timeout=0.3)
    runner, server, url = await serve(hello_app(guard.middleware, metrics_body=b"#" * 2**20), guard)
    port = int(url.rsplit(":", 1)[1])
    loop = asyncio.get_running_loop()
    readers_that_never_read: list[socket.socket] = []
    try:
        for _ in range(2):  # the whole cap
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a small window: the answers back up fast
            sock.setblocking(False)
            readers_that_never_read.append(sock)
            await loop.sock_connect(sock, ("127.0.0.1", port))
            await loop.sock_sendall(sock, GET % b"/metrics" * 8)
        await refused.wait_for("write_timeout", count=2)
        async with aiohttp.ClientSession() as client:  # their places are free again
            async with client.get(url + "/metrics") as response:
                assert response.status == 200 and len(await response.read()) == 2**20
    finally:
        for sock in readers_that_never_read:
            sock.close()
        server.close()
        await runner.cleanup()
    assert refused == ["write_timeout", "write_timeout"]


async def test_a_pipelined_flood_gets_a_bounded_number_of_answers_and_a_sequential_client_is_never_cut():
    refused = Refused()
    guard = ConnectionGuard(on_refused=refused, max_pipelined=4)
    runner, server, url = await serve(hello_app(guard.middleware), guard)
    port = int(url.rsplit(":", 1)[1])
    connections_made: list[object] = []

    async def on_connection(session, context, params) -> None:
        connections_made.append(params)

    tracing = aiohttp.TraceConfig()
    tracing.on_connection_create_end.append(on_connection)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(GET % b"/healthz" * 50)
        answers = await asyncio.wait_for(reader.read(), 5)  # the server ends the connection
        writer.close()
        # The first request, then 4 sent before the answer to the one ahead: the last answer says so.
        assert answers.count(b"HTTP/1.1 200 OK") == 1 + 4
        assert b"Connection: close" in answers.rsplit(b"HTTP/1.1 200 OK", 1)[1]
        assert refused == ["max_pipelined"]
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1), trace_configs=[tracing]) as client:
            for _ in range(30):  # one request at a time on one keep-alive connection: never pipelined
                async with client.get(url + "/healthz") as response:
                    assert response.status == 200 and "close" not in response.headers.get("Connection", "")
        assert len(connections_made) == 1
    finally:
        server.close()
        await runner.cleanup()
    assert refused == ["max_pipelined"]


# Row 12 and past the cap: the reserve, TLS handshakes, accept errors -------------------------


async def test_past_the_cap_a_reserve_serves_healthz_and_answers_a_scrape_503_then_closes_at_once():
    refused = Refused()
    guard = ConnectionGuard(max_connections=2, header_timeout=5, on_refused=refused, reserve=2)
    runner, server, url = await serve(hello_app(guard.middleware), guard)
    port = int(url.rsplit(":", 1)[1])
    idle = []
    try:
        idle += [await asyncio.open_connection("127.0.0.1", port) for _ in range(2)]  # the cap, held idle
        async with aiohttp.ClientSession() as client:
            for _ in range(3):
                async with client.get(url + "/healthz") as response:
                    assert response.status == 200 and response.headers["Connection"] == "close"
            async with client.get(url + "/metrics") as response:
                assert response.status == 503 and response.headers["Connection"] == "close"
                assert "Limit of concurrent connections reached (2)" in await response.text()
        idle += [await asyncio.open_connection("127.0.0.1", port) for _ in range(2)]  # the reserve, held idle
        extra, extra_writer = await asyncio.open_connection("127.0.0.1", port)
        assert await asyncio.wait_for(extra.read(), 2) == b""  # past the reserve: closed at once, unanswered
        extra_writer.close()
    finally:
        for _, writer in idle:
            writer.close()
        server.close()
        await runner.cleanup()
    assert refused == ["max_connections", "max_connections"]


@pytest.fixture(scope="module")
def tls() -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A server context with a certificate for 127.0.0.1, and a client context that trusts it."""
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_context)
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    return server_context, client_context


async def test_tls_handshakes_count_against_the_cap_from_the_tcp_accept_and_give_their_place_back(tls):
    server_context, client_context = tls
    refused = Refused()
    guard = ConnectionGuard(max_connections=2, on_refused=refused, reserve=1, handshake_timeout=0.5)
    runner, server, url = await serve(hello_app(guard.middleware), guard, server_context)
    port = int(url.rsplit(":", 1)[1])
    try:
        # Two clients that connect and never say hello, one that says garbage: TCP accepted, TLS never done.
        stalled = [await asyncio.open_connection("127.0.0.1", port) for _ in range(2)]
        async with aiohttp.ClientSession() as client:
            async with client.get(url + "/healthz", ssl=client_context) as response:
                assert response.status == 200  # the cap is taken by handshakes: served from the reserve
        stalled.append(await asyncio.open_connection("127.0.0.1", port))  # takes the reserve
        extra, extra_writer = await asyncio.open_connection("127.0.0.1", port)
        assert await asyncio.wait_for(extra.read(), 2) == b""  # closed at once, before any handshake
        extra_writer.close()
        assert refused == ["max_connections"]
        stalled[0][1].write(b"garbage\r\n\r\n")
        for reader, _ in stalled:  # a failed handshake, and the ones that time out, all end
            assert await asyncio.wait_for(reader.read(), 5) == b""
        async with aiohttp.ClientSession() as client:  # and give their places back
            async with client.get(url + "/metrics", ssl=client_context) as response:
                assert response.status == 200 and await response.text() == "ok"
        for _, writer in stalled:
            writer.close()
    finally:
        server.close()
        await runner.cleanup()
    assert refused == ["max_connections"]


@pytest.mark.skipif(
    not Path("/proc/self/fd").is_dir() or not hasattr(resource, "prlimit"), reason="needs Linux's /proc and prlimit"
)
def test_accept_errors_are_logged_at_most_once_a_second(tmp_path):
    from .test_web import Exporter

    config = tmp_path / "config.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "interval": 3600,
                "sources": [{"name": "s", "provider": "syntropic137", "base_url": "http://127.0.0.1:1", "retries": 0}],
            }
        )
    )
    exporter = Exporter(tmp_path, "--config.file", str(config), "--web.max-connections", "200")
    port = int(exporter.url.rsplit(":", 1)[1].split("/")[0])
    pid = exporter.process.pid
    limits = resource.prlimit(pid, resource.RLIMIT_NOFILE)
    clients: list[socket.socket] = []

    def accept_errors() -> list[dict]:
        return [e for e in exporter.events() if "accept" in e["msg"]]

    try:
        resource.prlimit(pid, resource.RLIMIT_NOFILE, (len(os.listdir(f"/proc/{pid}/fd")) + 2, limits[1]))
        clients += [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(20)]
        deadline = time.monotonic() + 10
        while len(accept_errors()) < 2 and time.monotonic() < deadline:  # the errors go on: every retry fails
            time.sleep(0.05)
        first, second = accept_errors()[:2]
        gap = (datetime.fromisoformat(second["time"]) - datetime.fromisoformat(first["time"])).total_seconds()
        assert gap >= 0.9, f"two accept errors logged {gap:.3f} s apart: {first['msg']!r}"
        assert first["msg"] == "cannot accept connections" and "Too many open files" in first["error"]
        assert second["suppressed"] > 0  # the errors in between were counted, not logged
    finally:
        for client in clients:
            client.close()
        resource.prlimit(pid, resource.RLIMIT_NOFILE, limits)
        assert exporter.stop() == 0
