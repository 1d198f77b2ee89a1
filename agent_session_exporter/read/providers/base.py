"""What every provider shares: the base class that turns pages into records (the poll contract's
records are in ``model.py``; field readers in ``read/fields.py``, pagers in ``read/pagers.py``)."""

from __future__ import annotations

import abc
import contextlib
import time
from typing import Any, AsyncIterator, Awaitable, Callable, Iterable

import structlog

from agent_session_exporter.model import InvalidRecord, KnownRows, Outcome, PendingRef, PollResult, PollWindow, SessionRecord
from agent_session_exporter.read.fields import dropped_figures, item_id
from agent_session_exporter.read.http_client import BEARER, AuthRefused, HeaderAuth, HttpClient, NotFound, UpstreamError
from agent_session_exporter.read.source import SourceBase as SourceConfig
from agent_session_exporter.read.typed import Untyped, as_plain, is_typed
from agent_session_exporter.safetext import make_safe


class Provider(abc.ABC):
    """Turns one API's pages into SessionRecords. Knows nothing of Prometheus."""

    #: The source's own config model (options, defaults, page limit).
    Config: type[SourceConfig] = SourceConfig
    #: How the API takes its key.
    AUTH: HeaderAuth = BEARER
    #: How pending sessions older than the window are re-checked: ``lookup`` (one request each, by a
    #: detail endpoint or an id filter; the poller caps them per cycle) or ``window`` (the poll
    #: window widens back to the oldest of them).
    PENDING_RECHECK = "window"
    #: The status vocabulary: each raw status and its outcome, None for an active status.
    STATUSES: dict[str, Outcome | None] = {}
    #: Which optional figures the API supplies ("warnings", "tokens", "cost"); the others are never
    #: exported for its sources (no series at 0 for a figure the provider does not have).
    FIGURES: frozenset[str] = frozenset()
    #: Whether ``band_holds`` can tell in one request that a band of the list holds only the rows the
    #: exporter knows, so that a due sweep is replaced by that probe while nothing is written late.
    PROBES = False

    def __init__(self, source: SourceConfig, http: HttpClient, clock: Callable[[], float] = time.time) -> None:
        self.source = source
        self.http = http
        #: The exporter's clock (the poller's): when each page's response arrived (``observed_at``).
        self.clock = clock
        self.log = structlog.get_logger(source=source.name, provider=source.provider)

    def describe(self) -> str | None:
        """A line logged once at start about how this provider reads its API, if any."""
        return None

    @abc.abstractmethod
    async def poll(self, window: PollWindow) -> PollResult:
        """Fetch every session with key time >= ``window.since`` (at least), and the stale pending."""

    @abc.abstractmethod
    def parse_item(self, item: dict[str, Any]) -> SessionRecord | None:
        """One API item to one record, or None for an item that is not a session to count (such as a
        Dify log row without a run); raises InvalidRecord."""

    async def band_holds(self, low: float, high: float, known: KnownRows) -> bool | None:
        """Whether the rows of the list whose key times, as ``parse_item`` reads them, lie in
        [``low``, ``high``] are exactly the ``known`` ones there (the band was read before; rows may
        have been added above it since); None when the answer cannot tell. Unsure is None or False,
        never True. Rows are assumed not to be deleted within the window. Only providers with ``PROBES``."""
        raise NotImplementedError

    def skipped_row(self, item: Any) -> tuple[str, float] | None:
        """A row ``parse_item`` made no record of: its id and key time, where it has them (providers
        with ``PROBES`` whose lists hold such rows)."""
        return None

    def from_typed(self, item: Any) -> SessionRecord | None:
        """One item of a typed page (a struct of ``PAGE``) to a record, as ``parse_item`` would make
        it; raises Untyped for anything it does not take as is. Only providers with ``PAGE`` have one."""
        raise Untyped

    def parse_items(self, items: Iterable[Any], result: PollResult,
                    parse: Callable[[dict[str, Any]], SessionRecord | None] | None = None) -> list[SessionRecord]:
        """Parse a page's items, skipping (and noting) the bad ones so the rest still count. Every
        record, typed or read item by item, is made safe here (``safetext.make_safe``): its id
        checked, its text fields cleaned.

        A page is read up to the ``page_size`` asked for: an API that sends more gets the surplus
        ignored and noted once (``oversized_page``), so a page of a million items costs no more.
        Each record carries ``observed_at``: the clock as its page is parsed, right after the response
        that brought it arrived (every page of every provider passes here, once).
        """
        parse = parse or self.parse_item
        observed = self.clock()
        if not isinstance(items, list):
            items = list(items)
        if len(items) > self.source.page_size:
            result.invalid.append(("oversized_page", None))
            items = items[:self.source.page_size]
        records = []
        dropped = dropped_figures
        typed = is_typed(items)
        convert = self.from_typed
        for item in items:
            dropped.clear()
            try:
                if typed:
                    try:
                        record = convert(item)
                    except Untyped:
                        item = as_plain(item)  # read item by item, and named by its id should it fail
                        record = parse(item)
                elif not isinstance(item, dict):
                    raise InvalidRecord("not_an_object")
                else:
                    record = parse(item)
                sanitized = make_safe(record) if record is not None else ()
            except InvalidRecord as exc:
                result.invalid.append((exc.reason, item_id(item)))
                continue
            if record is not None:
                if dropped:
                    record.dropped_figures = tuple(dropped)
                if sanitized:
                    record.sanitized = sanitized
                record.observed_at = observed
                records.append(record)
            elif (row := self.skipped_row(item)) is not None:
                result.skipped[row[0]] = row[1]
        result.records.extend(records)
        return records

    async def recheck_pending(self, pending: Iterable[PendingRef], result: PollResult,
                              fetch: Callable[[PendingRef], Awaitable[list[Any]]]) -> None:
        """Re-read stale pending sessions one by one with ``fetch`` (a detail endpoint, an id filter, or
        the list narrowed to the session's own key time).

        A session the API no longer has is ``gone``; one whose lookup fails is ``unreadable`` this
        cycle and nothing else is affected (refused credentials still fail the cycle).
        """
        before = self.http.requests_this_cycle
        try:
            await self._recheck(pending, result, fetch)
        finally:
            result.lookup_requests += self.http.requests_this_cycle - before

    async def _recheck(self, pending: Iterable[PendingRef], result: PollResult,
                       fetch: Callable[[PendingRef], Awaitable[list[Any]]]) -> None:
        for ref in pending:
            try:
                items = await fetch(ref)
            except NotFound:
                result.gone.append(ref.session_id)
                continue
            except AuthRefused:
                raise
            except UpstreamError as exc:
                result.unreadable[ref.session_id] = exc.kind
                continue
            records = self.parse_items(items, result)
            if not items:
                result.gone.append(ref.session_id)
            elif not records:
                result.unreadable[ref.session_id] = "invalid"
            elif all(r.session_id != ref.session_id for r in records):
                result.unreadable[ref.session_id] = "not_in_answer"  # the API ignored the id it was asked for

    def check_newest_first(self, key_times: Iterable[float], previous: float | None, parameter: str,
                           result: PollResult) -> float | None:
        """Verify that a page's key times continue a newest-first order; note ``parameter`` (and
        never trust the order again) when they do not. Returns the page's last key time, the
        bound the next page must not exceed."""
        last = previous
        for key_time in key_times:
            if last is not None and key_time > last:
                result.unordered = parameter
                self.trust_order = False
            last = key_time
        return last

    #: False once the API has been seen to break the order it promises; then whole windows are read.
    trust_order: bool = True

    async def read_newest_first(self, pages: AsyncIterator[list[Any]], window: PollWindow, since: float,
                                result: PollResult, order_parameter: str) -> None:
        """Read a newest-first list from a pager, stopping at the first page that reaches back past
        ``since`` (older pages hold nothing new).

        The order is verified, never trusted: on a page out of newest-first order,
        ``order_parameter`` is reported and the list is read to its end (slower, never wrong).
        """
        bound: float | None = None
        seen: set[str] = set()
        async with contextlib.aclosing(pages):
            async for items in pages:
                records = self.parse_items(items, result)
                # Sessions added meanwhile shift an offset-paged list down: the next page repeats the
                # last few of this one, newer than its end. Only sessions not read yet say anything of order.
                fresh = [r.key_time for r in records if r.session_id not in seen]
                seen.update(r.session_id for r in records)
                bound = self.check_newest_first(fresh, bound, order_parameter, result)
                if self.trust_order and records and min(r.key_time for r in records) < since:
                    return
                if self.trust_order and window.stop_at_known and any(
                        r.session_id in window.known_finished for r in records):
                    return

    def max_pages_reached(self, **context: Any) -> None:
        self.log.warning("max_pages reached; raise max_pages, or poll more often", max_pages=self.source.max_pages,
                         **context)
