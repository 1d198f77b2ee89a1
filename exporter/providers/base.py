"""What every provider shares: the poll contract, field readers, and the page-number pager."""

from __future__ import annotations

import abc
import contextlib
import math
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, AsyncIterator, Awaitable, Callable, Container, Iterable

import structlog

from ..http_client import BEARER, AuthRefused, HeaderAuth, HttpClient, NotFound, UpstreamError
from ..model import InvalidRecord, Outcome, SessionRecord
from ..sourceconfig import SourceBase as SourceConfig
from ..timeparse import parse_timestamp


@dataclass(frozen=True, slots=True)
class PendingRef:
    """A session seen active that the provider must keep reporting until it ends."""

    session_id: str
    key_time: float


@dataclass(frozen=True)
class PollWindow:
    """``since``: sessions whose key time is older are not needed, except ``stale_pending``
    (pending sessions older than ``since``), which the provider re-checks its own way."""

    since: float
    stale_pending: tuple[PendingRef, ...] = ()
    #: The collector's clock at the start of the cycle (None: the wall clock).
    now: float | None = None
    #: Ids already counted as finished (read-only), for providers that can skip work on them.
    known_finished: Container[str] = frozenset()

    @property
    def since_with_stale(self) -> float:
        """``since`` widened back to the oldest stale pending session (for APIs without a lookup)."""
        return min([self.since] + [p.key_time for p in self.stale_pending])


@dataclass
class PollResult:
    records: list[SessionRecord] = field(default_factory=list)
    #: Items skipped as invalid: (reason, the item's id where it has one).
    invalid: list[tuple[str, str | None]] = field(default_factory=list)
    #: Pending session ids the provider learned no longer exist upstream.
    gone: list[str] = field(default_factory=list)
    #: Pending session ids whose re-check failed this cycle, with the error kind; only they wait.
    unreadable: dict[str, str] = field(default_factory=dict)
    #: The request parameter whose promised order the pages broke (e.g. Whatabot ``orderBy``), if any.
    unordered: str | None = None


class InvalidPage(UpstreamError):
    """A response whose top-level shape is not what the provider documents."""

    def __init__(self, path: str, expected: str) -> None:
        super().__init__("invalid_shape", f"GET {path}: response is not {expected}")


class Provider(abc.ABC):
    """Turns one API's pages into SessionRecords. Knows nothing of Prometheus."""

    #: The source's own config model (options, defaults, page limit).
    Config: type[SourceConfig] = SourceConfig
    #: How the API takes its key.
    AUTH: HeaderAuth = BEARER
    #: How pending sessions older than the window are re-checked: ``lookup`` (one request each, by a
    #: detail endpoint or an id filter; the collector caps them per cycle) or ``window`` (the poll
    #: window widens back to the oldest of them).
    PENDING_RECHECK = "window"
    #: The status vocabulary: each raw status and its outcome, None for an active status.
    STATUSES: dict[str, Outcome | None] = {}
    #: Which optional figures the API supplies ("warnings", "tokens", "cost"); the others are never
    #: exported for its sources (no series at 0 for a figure the provider does not have).
    FIGURES: frozenset[str] = frozenset()

    def __init__(self, source: SourceConfig, http: HttpClient) -> None:
        self.source = source
        self.http = http
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

    def parse_items(self, items: Iterable[Any], result: PollResult,
                    parse: Callable[[dict[str, Any]], SessionRecord | None] | None = None) -> list[SessionRecord]:
        """Parse a page's items, skipping (and noting) the bad ones so the rest still count.

        A page is read up to the ``page_size`` asked for: an API that sends more gets the surplus
        ignored and noted once (``oversized_page``), so a page of a million items costs no more.
        """
        parse = parse or self.parse_item
        if not isinstance(items, list):
            items = list(items)
        if len(items) > self.source.page_size:
            result.invalid.append(("oversized_page", None))
            items = items[:self.source.page_size]
        records = []
        dropped = _dropped
        for item in items:
            dropped.clear()
            try:
                if not isinstance(item, dict):
                    raise InvalidRecord("not_an_object")
                record = parse(item)
            except InvalidRecord as exc:
                result.invalid.append((exc.reason, _item_id(item)))
                continue
            if record is not None:
                if dropped:
                    record.dropped_figures = tuple(dropped)
                records.append(record)
        result.records.extend(records)
        return records

    async def recheck_pending(self, pending: Iterable[PendingRef], result: PollResult,
                              fetch: Callable[[str], Awaitable[list[Any]]]) -> None:
        """Re-read stale pending sessions one by one with ``fetch`` (a detail endpoint or an id filter).

        A session the API no longer has is ``gone``; one whose lookup fails is ``unreadable`` this
        cycle and nothing else is affected (refused credentials still fail the cycle).
        """
        for ref in pending:
            try:
                items = await fetch(ref.session_id)
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

    async def read_newest_first(self, pages: AsyncIterator[list[Any]], since: float, result: PollResult,
                                order_parameter: str) -> None:
        """Read a newest-first list from a pager, stopping at the first page that reaches back past
        ``since`` (older pages hold nothing new).

        The order is verified, never trusted: on a page out of newest-first order,
        ``order_parameter`` is reported and the list is read to its end (slower, never wrong).
        """
        bound: float | None = None
        async with contextlib.aclosing(pages):
            async for items in pages:
                records = self.parse_items(items, result)
                bound = self.check_newest_first((r.key_time for r in records), bound, order_parameter, result)
                if self.trust_order and records and min(r.key_time for r in records) < since:
                    return

    def max_pages_reached(self, **context: Any) -> None:
        self.log.warning("max_pages reached; raise max_pages, or poll more often", max_pages=self.source.max_pages,
                         **context)


# --- field readers: each raises InvalidRecord with a short reason -------------------------------


def require_str(item: dict[str, Any], key: str, *, allow_int: bool = False) -> str:
    """A non-empty string (or, for ids, an integer)."""
    value = item.get(key)
    if value is None or value == "":
        raise InvalidRecord("missing_field", key)
    if not (isinstance(value, str) or (allow_int and isinstance(value, int) and not isinstance(value, bool))):
        raise InvalidRecord("wrong_type", key)
    return str(value)


def optional_str(item: dict[str, Any], key: str) -> str | None:
    value = item.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise InvalidRecord("wrong_type", key)
    return value


#: Bounds past which one session's figure is not believed: a year, a trillion tokens, a million
#: dollars, a million warnings. They keep every counter finite (``1e400`` or two ``1e308`` would
#: make it +Inf for good).
MAX_SECONDS = 366 * 86400.0
MAX_MILLISECONDS = MAX_SECONDS * 1000.0
MAX_TOKENS = 1e12
MAX_COST_USD = 1e6
MAX_WARNINGS = 1e6

#: Keys of the figures dropped from the item being parsed (parsing is synchronous: one list serves).
_dropped: list[str] = []


def figure(item: dict[str, Any], key: str, maximum: float) -> float | None:
    """An optional figure: a number (or a numeric string, as decimals are serialised) from 0 to
    ``maximum``. Anything else drops this figure only: the session still counts, and the drop is
    noted on its record (``SessionRecord.dropped_figures``). Never raises."""
    value = item.get(key)
    kind = type(value)
    if (kind is int or kind is float) and 0 <= value <= maximum:  # the common case, checked cheaply
        return float(value)
    if value is None or value == "":
        return None
    number = _finite_number(value)
    if number is None or not 0 <= number <= maximum:
        _dropped.append(key)
        return None
    return number


def _finite_number(value: Any) -> float | None:
    try:
        if isinstance(value, bool):
            return None
        if isinstance(value, str):
            decimal = Decimal(value.strip())
            if not decimal.is_finite():  # NaN, sNaN, Infinity: no comparison may even be tried on them
                return None
            value = decimal
        if not isinstance(value, (int, float, Decimal)):
            return None
        number = float(value)
    except (InvalidOperation, ValueError, OverflowError):
        return None
    return number if math.isfinite(number) else None


def time_field(item: dict[str, Any], key: str, *, required: bool = False) -> float | None:
    value = item.get(key)
    kind = type(value)
    if (kind is int or kind is float) and 0 <= value < 1e11:  # Unix seconds, checked cheaply
        return float(value)
    try:
        value = parse_timestamp(value)
    except (ValueError, OverflowError):
        raise InvalidRecord("bad_timestamp", key) from None
    if value is None and required:
        raise InvalidRecord("missing_field", key)
    return value


def object_field(item: dict[str, Any], key: str, *, required: bool = False) -> dict[str, Any]:
    value = item.get(key)
    if value is None:
        if required:
            raise InvalidRecord("missing_field", key)
        return {}
    if not isinstance(value, dict):
        raise InvalidRecord("wrong_type", key)
    return value


def elapsed(started_at: float | None, finished_at: float | None) -> float | None:
    if started_at is None or finished_at is None or not 0 <= finished_at - started_at <= MAX_SECONDS:
        return None
    return finished_at - started_at


def _item_id(item: Any) -> str | None:
    """The id of an invalid item, cut short, to count and log it once; None where it has none."""
    if not isinstance(item, dict):
        return None
    value = item.get("id") or item.get("session_id") or item.get("event_id")
    return str(value)[:128] if isinstance(value, (str, int)) and not isinstance(value, bool) else None


def list_field(body: Any, key: str, path: str) -> list[Any]:
    """The item list of a documented ``{key: [...]}`` page, or InvalidPage."""
    if not isinstance(body, dict) or not isinstance(body.get(key), list):
        raise InvalidPage(path, f"an object with a list '{key}'")
    return body[key]
