"""What one test read sees, taken from the outside of any provider: each request as aiohttp's tracing
shows it (credentials redacted), each answer as the HTTP client's ``RequestObserver`` reports it,
and each page's items as ``Provider.parse_items`` makes them into records. The limits of the read
(pages, records) end it at the start of the first request past them: that request is never sent."""

from __future__ import annotations

import contextvars
import json
import time
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, Callable, Iterable

import aiohttp
import yarl

from agent_session_exporter.logs import REDACTED, redactor
from agent_session_exporter.model import PollResult, PollWindow, SessionRecord
from agent_session_exporter.read.providers.base import Provider
from agent_session_exporter.safetext import safe_text

#: Query parameters that hold a credential wherever an API takes one in the URL: their values are
#: never shown, whether or not they are a configured secret.
CREDENTIAL_PARAMS = frozenset(
    {"api_key", "apikey", "api-key", "key", "access_token", "token", "auth", "password", "secret", "signature", "sig"}
)


#: The bytes of a request body kept to show.
BODY_KEPT = 4096


class LimitReached(Exception):
    """Raised as a request past a limit starts: the read ends there. ``limit``: ``page`` or ``record``."""

    def __init__(self, limit: str) -> None:
        super().__init__(f"the test read's {limit} limit is reached")
        self.limit = limit


@dataclass
class Exchange:
    """One request sent (a retry is one more) and, once answered, what its page held."""

    page: int
    retry: bool
    method: str
    #: Path and query, decoded, every credential redacted.
    target: str
    started: float
    #: The request's body as sent (the first ``BODY_KEPT`` bytes), for a POST.
    body: bytes = b""
    #: The HTTP status, or what failed: ``timeout``, ``connection``, ``invalid_json``, ``too_large``.
    outcome: str | None = None
    seconds: float | None = None
    #: Body bytes received (after any content decoding).
    size: int | None = None
    #: Rows the provider read from the answer as items (None: it read none, e.g. a list of workflows).
    rows: int | None = None
    records: list[SessionRecord] = field(default_factory=list)
    #: Rows refused (``InvalidRecord``): (reason, the row's id where it has one).
    refused: list[tuple[str, str | None]] = field(default_factory=list)
    #: Rows past the page size asked for (``oversized_page``): never read.
    surplus: int = 0
    response: aiohttp.ClientResponse | None = field(default=None, repr=False)

    @property
    def not_sessions(self) -> int:
        """Rows that are no session to count (a child event, a log row without a run)."""
        return max(0, (self.rows or 0) - self.surplus - len(self.records) - len(self.refused))


def redacted_target(url: yarl.URL) -> str:
    """``url``'s path and query as a person reads them (decoded), with configured secrets and the
    values of credential parameters redacted."""
    query = "&".join(f"{name}={REDACTED if name.lower() in CREDENTIAL_PARAMS else value}" for name, value in url.query.items())
    return safe_text(redactor.redact(url.path + (f"?{query}" if query else "")))


def redacted_body(body: bytes) -> str:
    """A request body as text, configured secrets and the values of credential keys redacted."""
    text = body.decode("utf-8", "replace")
    try:
        text = json.dumps(_without_credentials(json.loads(text)), ensure_ascii=False, separators=(",", ":"))
    except ValueError:
        pass  # not JSON (or cut short): shown as it is, secrets redacted
    return safe_text(redactor.redact(text))


def _without_credentials(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: REDACTED if str(k).lower() in CREDENTIAL_PARAMS else _without_credentials(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_credentials(v) for v in value]
    return value


class Capture:
    """The request observer and tracer of one test read; ``exchanges`` in the order they were sent."""

    def __init__(self, max_pages: int, max_records: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_pages = max_pages
        self.max_records = max_records
        self.clock = clock
        self.exchanges: list[Exchange] = []
        #: The limit that ended the read, if one did.
        self.stopped: str | None = None
        self._pages = 0
        #: The request of the task at hand: the observer's calls come from the task that sent it.
        self._current: contextvars.ContextVar[Exchange | None] = contextvars.ContextVar("exchange", default=None)
        self._retrying: contextvars.ContextVar[bool] = contextvars.ContextVar("retrying", default=False)
        #: The request answered last: the page the next items come from (a provider parses a page as
        #: soon as it has it, before the next answer can have arrived, even while prefetching).
        self._answered: Exchange | None = None

    @property
    def records_read(self) -> int:
        return sum(len(e.records) + len(e.refused) for e in self.exchanges)

    def trace_config(self) -> aiohttp.TraceConfig:
        trace = aiohttp.TraceConfig()
        trace.on_request_start.append(self._started)
        trace.on_request_end.append(self._headers_in)
        trace.on_request_chunk_sent.append(self._body_out)
        return trace

    async def _started(
        self, session: aiohttp.ClientSession, context: SimpleNamespace, params: aiohttp.TraceRequestStartParams
    ) -> None:
        retry = self._retrying.get()
        self._retrying.set(False)
        previous = self._current.get()
        if retry and previous is not None:
            page = previous.page
        else:
            retry = False
            limit = "page" if self._pages >= self.max_pages else "record" if self.records_read >= self.max_records else None
            if limit is not None:
                self.stopped = self.stopped or limit
                raise LimitReached(limit)
            self._pages = page = self._pages + 1
        exchange = Exchange(page, retry, params.method, redacted_target(params.url), self.clock())
        self.exchanges.append(exchange)
        self._current.set(exchange)

    async def _body_out(
        self, session: aiohttp.ClientSession, context: SimpleNamespace, params: aiohttp.TraceRequestChunkSentParams
    ) -> None:
        if (exchange := self._current.get()) is not None and len(exchange.body) < BODY_KEPT:
            exchange.body = (exchange.body + params.chunk)[:BODY_KEPT]

    async def _headers_in(
        self, session: aiohttp.ClientSession, context: SimpleNamespace, params: aiohttp.TraceRequestEndParams
    ) -> None:
        if (exchange := self._current.get()) is not None:
            exchange.response = params.response

    # The HTTP client's RequestObserver: called once per request sent, when it is answered or failed.
    def request(self, code: str) -> None:
        exchange = self._current.get()
        if exchange is None or exchange.outcome is not None:
            return
        exchange.outcome, exchange.seconds = code, self.clock() - exchange.started
        if exchange.response is not None:
            exchange.size = exchange.response.content.total_bytes
            exchange.response = None
        self._answered = exchange

    def retry(self) -> None:
        self._retrying.set(True)

    def rate_limit_remaining(self, remaining: float) -> None:
        return None

    def watch(self, provider: Provider[Any]) -> None:
        """Note each page's items as ``provider`` parses them (into the page answered last)."""
        parse_items = provider.parse_items

        def noted(
            items: Iterable[Any],
            result: PollResult,
            parse: Callable[[dict[str, Any]], SessionRecord | None] | None = None,
            window: PollWindow | None = None,
            rows: list[tuple[str, float]] | None = None,
        ) -> list[SessionRecord]:
            items = items if isinstance(items, list) else list(items)
            invalid_before = len(result.invalid)
            records = parse_items(items, result, parse, window, rows)
            exchange = self._answered
            if exchange is None:  # items that came with no request: shown as a page of their own
                exchange = self._answered = Exchange(0, False, "-", "(no request)", self.clock())
                self.exchanges.append(exchange)
            refused = result.invalid[invalid_before:]
            if refused[:1] == [("oversized_page", None)]:
                exchange.surplus += len(items) - provider.source.page_size
                refused = refused[1:]
            exchange.rows = (exchange.rows or 0) + len(items)
            exchange.records.extend(records)
            exchange.refused.extend(refused)
            return records

        provider.parse_items = noted  # type: ignore[method-assign]  # this read's provider only
