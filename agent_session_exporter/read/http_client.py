"""The one place for upstream HTTP: auth headers, timeouts, retries, 429, size caps, JSON."""

from __future__ import annotations

import asyncio
import base64
import email.utils
import json
import random
import time
from dataclasses import dataclass
from typing import Any, Callable, Protocol

import aiohttp
import msgspec
import orjson
import yarl

from agent_session_exporter.read.source import SourceBase as SourceConfig

USER_AGENT = "agent-session-exporter"
_MAX_BACKOFF = 30.0
_MAX_RETRY_AFTER = 300.0


class RequestObserver(Protocol):
    def request(self, code: str) -> None: ...
    def retry(self) -> None: ...
    def rate_limit_remaining(self, remaining: float) -> None: ...


class UpstreamError(Exception):
    """A request that failed for good. ``kind`` is the requests_total code label.

    The message carries the URL path and the status, never headers or credentials.
    """

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class AuthRefused(UpstreamError):
    """401/403: the credentials were refused. Not retried."""


class NotFound(UpstreamError):
    """404 on a detail lookup: the session no longer exists upstream."""


class ResponseTooLarge(UpstreamError):
    """A response over ``max_response_bytes``, cut off while streaming (kind ``too_large``)."""


class BudgetExhausted(UpstreamError):
    """The cycle's request budget is spent: a looping or endless upstream costs no more than that."""


@dataclass(frozen=True)
class HeaderAuth:
    """How an API takes its key: a header and what goes before the key (a provider declares it)."""

    header: str = "Authorization"
    prefix: str = "Bearer "

    def headers(self, source: SourceConfig) -> dict[str, str]:
        """The source's credential headers: Basic auth when configured, else the key in this header."""
        if source.basic_auth is not None:
            token = base64.b64encode(f"{source.basic_auth.username}:{source.basic_auth.password}".encode()).decode()
            return {"Authorization": f"Basic {token}"}
        return {} if source.api_key is None else {self.header: self.prefix + source.api_key}


BEARER = HeaderAuth()


class HttpClient:
    """Fetches JSON for one source, with its auth, timeout, retry budget and rate limit."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        source: SourceConfig,
        observer: RequestObserver,
        auth: HeaderAuth = BEARER,
        sleep: Callable[[float], Any] = asyncio.sleep,
    ) -> None:
        self._session = session
        self._source = source
        self._observer = observer
        self._sleep = sleep
        self._headers = {"Accept": "application/json", "User-Agent": USER_AGENT, **auth.headers(source)}
        self._timeout = aiohttp.ClientTimeout(total=source.timeout)
        self._min_gap = 1.0 / source.max_requests_per_second if source.max_requests_per_second else 0.0
        self._next_slot = 0.0
        self._budget: int | None = None
        self._cycle_budget = 0

    def start_cycle(self, max_requests: int) -> None:
        """Allow ``max_requests`` requests (retries included) until the next call."""
        self._budget = self._cycle_budget = max_requests

    @property
    def requests_this_cycle(self) -> int:
        """Requests sent (retries included) since ``start_cycle``."""
        return 0 if self._budget is None else self._cycle_budget - self._budget

    async def get_json(
        self, path: str, params: dict[str, Any] | None = None, typed: msgspec.json.Decoder[Any] | None = None
    ) -> Any:
        """GET ``base_url + path`` and decode JSON, retrying transient failures a bounded number of times.

        ``typed``: a decoder of the page's structs, tried first; a body it refuses is decoded as
        plain JSON (so a page with one odd item is still read, item by item)."""
        return await self._request("GET", path, params, None, typed)

    async def post_json(self, path: str, body: Any, typed: msgspec.json.Decoder[Any] | None = None) -> Any:
        """POST a JSON body to ``base_url + path`` (a read-only query, such as HoneyHive's events export)
        and decode the JSON answer, with the same retries, caps and pacing as ``get_json``."""
        return await self._request("POST", path, None, orjson.dumps(body), typed)

    async def _request(
        self,
        method: str,
        path: str,
        params: dict[str, Any] | None,
        body: bytes | None,
        typed: msgspec.json.Decoder[Any] | None = None,
    ) -> Any:
        url = self._source.base_url + path
        clean = {k: str(v) for k, v in (params or {}).items() if v is not None}
        attempt = 0
        while True:
            if self._budget is not None:
                if self._budget <= 0:
                    raise BudgetExhausted("budget", f"{method} {_short(path)}: the cycle's request budget is spent")
                self._budget -= 1
            await self._pace()
            try:
                return await self._once(method, url, path, clean, body, typed)
            except _Retryable as exc:
                if attempt >= self._source.retries:
                    raise exc.error from None
                attempt += 1
                self._observer.retry()
                backoff = min(_MAX_BACKOFF, 0.5 * 2 ** (attempt - 1))
                await self._sleep(exc.wait if exc.wait is not None else random.uniform(backoff / 2, backoff))

    async def _pace(self) -> None:
        if not self._min_gap:
            return
        now = time.monotonic()
        wait = self._next_slot - now
        self._next_slot = max(now, self._next_slot) + self._min_gap
        if wait > 0:
            await self._sleep(wait)

    async def _once(
        self,
        method: str,
        url: str,
        path: str,
        params: dict[str, str],
        body: bytes | None,
        typed: msgspec.json.Decoder[Any] | None,
    ) -> Any:
        what = f"{method} {_short(path)}"
        headers = self._headers if body is None else {**self._headers, "Content-Type": "application/json"}
        try:
            async with self._session.request(
                method, url, params=params, data=body, headers=headers, timeout=self._timeout, allow_redirects=False
            ) as response:
                code = response.status
                remaining = response.headers.get("X-RateLimit-Remaining")
                if remaining is not None and remaining.isdigit():
                    self._observer.rate_limit_remaining(float(remaining))
                if code >= 400:
                    self._observer.request(str(code))
                    await self._classify_failure(response, what)
                payload = await self._read_capped(response, what)
        except (asyncio.TimeoutError, TimeoutError):
            self._observer.request("timeout")
            raise _Retryable(UpstreamError("timeout", f"{what}: timed out after {self._source.timeout:g}s")) from None
        except aiohttp.ClientError as exc:
            self._observer.request("connection")
            raise _Retryable(UpstreamError("connection", f"{what}: {connection_problem(exc, url)}")) from None
        if typed is not None:
            try:
                data = typed.decode(payload)
            except (msgspec.DecodeError, RecursionError):
                pass
            else:
                self._observer.request(str(code))
                return data
        try:
            data = _decode_json(payload)
        except ValueError:
            self._observer.request("invalid_json")
            raise UpstreamError("invalid_json", f"{what}: response is not valid JSON ({len(payload)} bytes)") from None
        self._observer.request(str(code))
        return data

    async def _classify_failure(self, response: aiohttp.ClientResponse, what: str) -> None:
        code = response.status
        message = f"{what}: HTTP {code}"
        if code in (401, 403):
            raise AuthRefused(str(code), f"{message}: the credentials were refused")
        if code == 404:
            raise NotFound(str(code), message)
        if code == 429:
            wait = parse_retry_after(response.headers.get("Retry-After"))
            raise _Retryable(UpstreamError(str(code), f"{message}: rate limited"), wait)
        if code >= 500:
            raise _Retryable(UpstreamError(str(code), message))
        raise UpstreamError(str(code), message)

    async def _read_capped(self, response: aiohttp.ClientResponse, what: str) -> bytes:
        """Read the body, refusing anything larger than max_response_bytes without buffering it."""
        limit = self._source.max_response_bytes
        if response.content_length is not None:
            if response.content_length > limit:
                self._observer.request("too_large")
                raise ResponseTooLarge("too_large", f"{what}: response of {response.content_length} bytes exceeds {limit}")
            if response.headers.get("Content-Encoding") is None:
                return await response.read()  # the server said how much, and it is within the cap
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.content.iter_chunked(65536):
            size += len(chunk)
            if size > limit:
                self._observer.request("too_large")
                raise ResponseTooLarge("too_large", f"{what}: response exceeds {limit} bytes")
            chunks.append(chunk)
        return b"".join(chunks)


#: Plain JSON, decoded in C with every integer exact: an id past 64 bits keeps its digits, as on the
#: typed path (orjson would read it as a float, so whether the item counted would depend on the
#: rest of its page).
_PLAIN = msgspec.json.Decoder()


def _decode_json(payload: bytes) -> Any:
    """msgspec, fast; the standard library where msgspec refuses a body that still holds JSON (a
    lone surrogate escape, ``1e400``), so one odd value costs its own field, not the whole page.
    ValueError when it is not JSON (nested past the recursion limit included)."""
    try:
        return _PLAIN.decode(payload)
    except (msgspec.DecodeError, RecursionError):
        pass
    try:
        return json.loads(payload)
    except RecursionError:
        raise ValueError("nested too deeply") from None


def connection_problem(exc: aiohttp.ClientError, url: str) -> str:
    """Host, port and reason of a failed connection; never a header, never a key."""
    parsed = yarl.URL(url)
    host, port = getattr(exc, "host", None) or parsed.host, getattr(exc, "port", None) or parsed.port
    os_error = getattr(exc, "os_error", None)
    reason = os_error.strerror if isinstance(os_error, OSError) and os_error.strerror else type(exc).__name__
    return f"cannot connect to {host}:{port}: {reason}"


def _short(path: str) -> str:
    """A path as messages show it: cut short, so a 20 KB id does not make a 20 KB log line."""
    return path if len(path) <= 120 else path[:120] + "..."


class _Retryable(Exception):
    def __init__(self, error: UpstreamError, wait: float | None = None) -> None:
        super().__init__(str(error))
        self.error = error
        self.wait = wait


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (delta seconds or an HTTP date), capped."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), _MAX_RETRY_AFTER)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return min(max(0.0, when.timestamp() - time.time()), _MAX_RETRY_AFTER)
