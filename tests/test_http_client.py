"""The HTTP client: retries, backoff, 429 Retry-After, auth refusal, timeouts, size caps, rate limit."""

from __future__ import annotations

import asyncio
import email.utils
import time

import aiohttp
import pytest
from aioresponses import aioresponses

from agent_session_exporter.read.http_client import AuthRefused, HttpClient, UpstreamError, parse_retry_after

from .helpers import KEY, make_source

URL = "http://api.test/sessions/logs"


class Recorder:
    def __init__(self) -> None:
        self.codes: list[str] = []
        self.retries = 0
        self.sleeps: list[float] = []

    def request(self, code: str) -> None:
        self.codes.append(code)

    def retry(self) -> None:
        self.retries += 1

    def rate_limit_remaining(self, remaining: float) -> None:
        self.remaining = remaining

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)


@pytest.fixture
async def client():
    async with aiohttp.ClientSession() as session:
        recorder = Recorder()

        def make(**overrides):
            return HttpClient(session, make_source("whatabot", **overrides), recorder, sleep=recorder.sleep), recorder

        yield make


async def test_429_honours_retry_after_seconds_then_succeeds(client):
    http, rec = client()
    with aioresponses() as m:
        m.get(URL, status=429, headers={"Retry-After": "7", "X-RateLimit-Remaining": "0"})
        m.get(URL, payload={"content": []}, headers={"X-RateLimit-Remaining": "99"})
        assert await http.get_json("/sessions/logs") == {"content": []}
    assert rec.codes == ["429", "200"] and rec.sleeps == [7.0] and rec.retries == 1
    assert rec.remaining == 99


def test_retry_after_http_date_and_cap():
    in_ten = email.utils.formatdate(time.time() + 10, usegmt=True)
    assert 8 <= parse_retry_after(in_ten) <= 10
    assert parse_retry_after("100000") == 300.0
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None


async def test_5xx_and_connection_errors_back_off_with_jitter_and_are_bounded(client):
    http, rec = client(retries=3)
    with aioresponses() as m:
        m.get(URL, status=500)
        m.get(URL, exception=aiohttp.ClientConnectionError("refused"))
        m.get(URL, status=503)
        m.get(URL, status=502)
        with pytest.raises(UpstreamError) as info:
            await http.get_json("/sessions/logs")
    assert info.value.kind == "502"
    assert rec.codes == ["500", "connection", "503", "502"] and rec.retries == 3
    assert len(rec.sleeps) == 3
    for attempt, slept in enumerate(rec.sleeps, start=1):
        ceiling = 0.5 * 2 ** (attempt - 1)
        assert ceiling / 2 <= slept <= ceiling


async def test_401_is_not_retried_and_the_message_never_echoes_the_key(client):
    http, rec = client()
    with aioresponses() as m:
        m.get(URL, status=401, body=f"bad key {KEY}")
        with pytest.raises(AuthRefused) as info:
            await http.get_json("/sessions/logs")
    assert rec.codes == ["401"] and rec.retries == 0
    assert "credentials were refused" in str(info.value) and KEY not in str(info.value)


async def test_timeout_is_retried_then_reported(client):
    http, rec = client(retries=1, timeout=0.2)
    with aioresponses() as m:
        m.get(URL, exception=asyncio.TimeoutError())
        m.get(URL, exception=asyncio.TimeoutError())
        with pytest.raises(UpstreamError) as info:
            await http.get_json("/sessions/logs")
    assert info.value.kind == "timeout" and rec.codes == ["timeout", "timeout"]


async def test_other_4xx_fail_without_retry(client):
    http, rec = client()
    with aioresponses() as m:
        m.get(URL, status=422, payload={"error": "limit"})
        with pytest.raises(UpstreamError) as info:
            await http.get_json("/sessions/logs")
    assert info.value.kind == "422" and rec.retries == 0


@pytest.mark.parametrize(
    "body, kind",
    [
        (b'{"content": [{"id": ', "invalid_json"),  # malformed JSON
        (b"[" + b"1," * 2000 + b"1]", "too_large"),  # larger than the 1 KiB cap below
        (b"[" * 50_000 + b"]" * 50_000, "invalid_json"),  # nested past the recursion limit
    ],
)
async def test_a_bad_body_fails_the_request_with_its_kind(client, body, kind):
    http, rec = client(max_response_bytes=1024 if kind == "too_large" else 1 << 20)
    with aioresponses() as m:
        m.get(URL, body=body)
        with pytest.raises(UpstreamError) as info:
            await http.get_json("/sessions/logs")
    assert info.value.kind == kind and rec.codes == [kind]


async def test_rate_limit_spaces_requests(client):
    http, rec = client(max_requests_per_second=4)
    with aioresponses() as m:
        m.get(URL, payload={}, repeat=True)
        for _ in range(5):
            await http.get_json("/sessions/logs")
    # The first request goes at once; each later one waits its turn (0.25 s apart, less time spent).
    assert len(rec.sleeps) == 4 and all(0.15 < s <= 0.25 * (i + 1) for i, s in enumerate(rec.sleeps))


async def test_basic_auth_is_sent_for_a_gateway(client):
    async with aiohttp.ClientSession() as session:
        source = make_source("syntropic137", basic_auth={"username": "u", "password": "p@ss"})
        http = HttpClient(session, source, Recorder())
        with aioresponses() as m:
            m.get("http://api.test/sessions", payload={"sessions": []})
            await http.get_json("/sessions")
            (call,) = next(iter(m.requests.values()))
    assert call.kwargs["headers"]["Authorization"] == "Basic dTpwQHNz"
