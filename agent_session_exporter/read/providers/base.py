"""What every provider shares: the base class that turns pages into records (the poll contract's
records are in ``model.py``; field readers in ``read/fields.py``, pagers in ``read/pagers.py``)."""

from __future__ import annotations

import abc
import asyncio
import contextlib
import time
from typing import Any, AsyncGenerator, Awaitable, Callable, Generic, Iterable, TypeVar

import structlog

from agent_session_exporter.model import KnownRows, Outcome, PendingRef, PollResult, PollWindow, SessionRecord
from agent_session_exporter.read.http_client import (
    BEARER,
    HeaderAuth,
    HttpClient,
    ResponseTooLarge,
)
from agent_session_exporter.read.providers.fallback import FALLBACK_RETRY_SECONDS, Fallback
from agent_session_exporter.read.providers.items import parse_page
from agent_session_exporter.read.providers.lookups import recheck
from agent_session_exporter.read.source import SourceBase
from agent_session_exporter.read.typed import Untyped
from agent_session_exporter.timeparse import to_iso

#: A page over ``max_response_bytes`` halves the page size, down to this.
MIN_PAGE_SIZE = 10
#: Items of a page parsed in one step of the event loop (``Provider.read_items``).
ITEMS_PER_STEP = 100


def now_of(window: PollWindow) -> float:
    """The poll's clock: the poller's at the start of the cycle, or the wall clock."""
    return window.now if window.now is not None else time.time()


#: A provider's source model: its options, typed (``Provider[WhatabotSource]``).
SourceT = TypeVar("SourceT", bound=SourceBase)


class Provider(abc.ABC, Generic[SourceT]):
    """Turns one API's pages into SessionRecords. Knows nothing of Prometheus."""

    #: The source's own config model (options, defaults, page limit): ``SourceT``, for the config to read.
    Config: type[SourceBase] = SourceBase
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
    #: Whether ``parse_item`` reads the provider's typed items (``read/typed.py: Fields``) as it reads
    #: plain ones: then they are parsed as they are, never made plain first (no ``from_typed``).
    PARSES_TYPED = False

    def __init__(self, source: SourceT, http: HttpClient, clock: Callable[[], float] = time.time) -> None:
        self.source: SourceT = source
        self.http = http
        #: The exporter's clock (the poller's): when each page's response arrived (``observed_at``).
        self.clock = clock
        self.log = structlog.get_logger(source=source.name, provider=source.provider)
        #: Taken while the API breaks the newest-first order it promises: whole windows are read.
        self.order = self.fallback(
            "the API ignores the order the exporter asked for; whole windows are read until it is tried again "
            "(slower, never wrong)",
            "the API keeps the order the exporter asks for again; reading newest first as planned",
            level="error",
        )

    def fallback(self, taken: str, dropped: str, level: str = "warning") -> Fallback:
        """A fallback of this source, tried without again once per max(``overlap``, 10 minutes)."""
        return Fallback(self.log, max(self.source.overlap, FALLBACK_RETRY_SECONDS), taken, dropped, level)

    def describe(self) -> str | None:
        """A line logged once at start about how this provider reads its API, if any."""
        return None

    @abc.abstractmethod
    async def poll(self, window: PollWindow) -> PollResult:
        """Fetch every session with key time >= ``window.since`` (at least), and the stale pending."""

    async def read(self, window: PollWindow) -> PollResult:
        """``poll``, whose page size is learned: a page over ``max_response_bytes`` restarts the read at
        half the page size (down to ``MIN_PAGE_SIZE``), and that size is kept for the next cycles
        (``source.page_size``, which every request chain asks for, becomes it). A response still over
        the cap at the smallest size fails the cycle, as any failed request does."""
        while True:
            try:
                return await self.poll(window)
            except ResponseTooLarge:
                was = self.source.page_size
                if was <= MIN_PAGE_SIZE:
                    raise
                size = max(MIN_PAGE_SIZE, was // 2)
                self.log.warning(
                    "a page was over max_response_bytes: the read starts again at half the page size, kept for the next cycles",
                    page_size=size,
                    was=was,
                    max_response_bytes=self.source.max_response_bytes,
                )
                self.source = self.source.model_copy(update={"page_size": size})

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

    def key_of(self, item: Any) -> tuple[str, float] | None:
        """An item's session id and key time, exactly as its record would hold them, read cheaply from
        the item (typed or plain) without making the record; None where it cannot tell so (then the
        item is read whole). Never raises. A provider without one reads every item whole."""
        return None

    def parse_items(
        self,
        items: Iterable[Any],
        result: PollResult,
        parse: Callable[[dict[str, Any]], SessionRecord | None] | None = None,
        window: PollWindow | None = None,
        rows: list[tuple[str, float]] | None = None,
    ) -> list[SessionRecord]:
        """Parse a page's items, skipping (and noting) the bad ones so the rest still count. Every
        record, typed or read item by item, is made safe here (``safetext.make_safe``): its id
        checked, its text fields cleaned.

        ``window``: a list read's window: an item the count would pass over (``PollWindow.ignores``:
        counted before, or older than the cutoff and not pending), told by its id and key time
        (``key_of``), makes no record at all, so a page of sessions read before costs its decode and a
        set lookup per item. ``rows``: where the (id, key
        time) of every item that made a record or was known go, in page order (what order checks and
        the stop rules of a list read need).

        A page is read up to the ``page_size`` asked for: an API that sends more gets the surplus
        ignored and noted once (``oversized_page``), so a page of a million items costs no more.
        Each record carries ``observed_at``: the clock as its page is parsed, right after the response
        that brought it arrived (every page of every provider passes here, once).
        """
        return parse_page(self, items, result, parse or self.parse_item, window, rows)

    async def fetch_one(self, ref: PendingRef) -> list[Any]:
        """The items holding one session, read by id (NotFound: none): for lookups. Declared by providers that can."""
        raise NotImplementedError

    @property
    def can_look_up(self) -> bool:
        return type(self).fetch_one is not Provider.fetch_one

    def polls_workflow(self, workflow: str) -> bool:
        """Whether reads cover ``workflow`` (a push about another is ignored): those named (``workflow_ids``,
        or the one ``workflow_id``), else every one."""
        named = getattr(self.source, "workflow_ids", None)
        if named is None and isinstance(one := getattr(self.source, "workflow_id", None), str):
            named = (one,)
        return named is None or workflow in named

    async def look_up(self, refs: Iterable[PendingRef], result: PollResult) -> None:
        """Re-read sessions by id through ``fetch_one`` outside a poll (a push's hint), as ``recheck_pending`` does."""
        await self.recheck_pending(refs, result, self.fetch_one)

    async def read_items(
        self,
        items: Iterable[Any],
        result: PollResult,
        parse: Callable[[dict[str, Any]], SessionRecord | None] | None = None,
        window: PollWindow | None = None,
        rows: list[tuple[str, float]] | None = None,
    ) -> list[SessionRecord]:
        """``parse_items`` of a list's page, ``ITEMS_PER_STEP`` items at a time with the event loop let
        run between (a page of a thousand new sessions would hold it for tens of milliseconds)."""
        if not isinstance(items, list):
            items = list(items)
        if len(items) <= ITEMS_PER_STEP or len(items) > self.source.page_size:
            return self.parse_items(items, result, parse, window, rows)  # an oversized page is cut in one step
        records: list[SessionRecord] = []
        for start in range(0, len(items), ITEMS_PER_STEP):
            if start:
                await asyncio.sleep(0)
            records += self.parse_items(items[start : start + ITEMS_PER_STEP], result, parse, window, rows)
        return records

    async def recheck_pending(
        self, pending: Iterable[PendingRef], result: PollResult, fetch: Callable[[PendingRef], Awaitable[list[Any]]]
    ) -> None:
        """Re-read stale pending sessions one by one with ``fetch`` (a detail endpoint, an id filter, or
        the list narrowed to the session's own key time).

        A session the API no longer has is ``gone``; one whose lookup fails is ``unreadable`` this
        cycle and nothing else is affected (refused credentials still fail the cycle). A lookup checks
        that the rows it got are the ones it asked for, and raises FilterIgnored at the first page that
        proves its filter ignored: counted (``filter_ignored``), the session waits.
        """
        before = self.http.requests_this_cycle
        try:
            await recheck(self.parse_items, pending, result, fetch)
        finally:
            result.lookup_requests += self.http.requests_this_cycle - before

    def check_newest_first(
        self, key_times: Iterable[float], previous: float | None, parameter: str, result: PollResult, now: float | None = None
    ) -> float | None:
        """Verify that a page's key times continue a newest-first order; note ``parameter`` when they do
        not, and in a read that trusted the order take the fallback (``self.order``). Returns the page's
        last key time, the bound the next page must not exceed. ``now``: the poll's clock (``now_of``)."""
        now = time.time() if now is None else now
        last = previous
        for key_time in key_times:
            if last is not None and key_time > last:
                if not self.order.in_use(now):
                    self.order.broke(now, parameter=parameter)
                result.unordered = parameter
            last = key_time
        return last

    @property
    def trust_order(self) -> bool:
        """Whether the order the API promises held in every read (or held again when last tried)."""
        return self.order.broken_at is None

    async def read_newest_first(
        self, pages: AsyncGenerator[list[Any], None], window: PollWindow, since: float, result: PollResult, order_parameter: str
    ) -> None:
        """Read a newest-first list from a pager, stopping at the first page that reaches back past
        ``since`` (older pages hold nothing new).

        The order is verified, never trusted: on a page out of newest-first order,
        ``order_parameter`` is reported and the list is read to its end (slower, never wrong), and so
        are the next cycles' until the order is tried again (``self.order``).
        """
        now = now_of(window)
        bound: float | None = None
        seen: set[str] = set()
        known = window.known_finished
        async with contextlib.aclosing(pages):
            async for items in pages:
                rows: list[tuple[str, float]] = []
                await self.read_items(items, result, window=window, rows=rows)
                # Sessions added meanwhile shift an offset-paged list down: the next page repeats the
                # last few of this one, newer than its end. Only sessions not read yet say anything of order.
                fresh = [key_time for sid, key_time in rows if sid not in seen]
                seen.update(sid for sid, _ in rows)
                bound = self.check_newest_first(fresh, bound, order_parameter, result, now)
                if self.order.in_use(now):
                    continue
                if rows and min(key_time for _, key_time in rows) < since:
                    break
                if window.stop_at_known and any(sid in known for sid, _ in rows):
                    break
        self.order.held(now)

    def page_stuck(self, result: PollResult, at: float, key: str) -> None:
        """A full page whose items share one key time ``at``: the API has no way past it (no offset), so
        sessions there may be missed. Logged, and counted (``stuck_pages_total``)."""
        result.stuck_pages += 1
        self.log.warning(f"a full page shares one {key}; cannot page further: sessions there may be missed", **{key: to_iso(at)})

    def max_pages_reached(self, **context: Any) -> None:
        self.log.warning("max_pages reached; raise max_pages, or poll more often", max_pages=self.source.max_pages, **context)
