"""What one cycle of a source did, as one value: the self-metrics and the log lines are both made
from it (``serve/reporting.py``), so they never tell two stories, and no event is reported twice.

The polling loop fills a CycleReport as the cycle goes and hands it over once the cycle is over (a
committed cycle's part only after its commit: a failed commit must not count twice).
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from typing import Callable, Hashable, Iterable

from agent_session_exporter.count.cycle import CyclePlan
from agent_session_exporter.model import PollResult
from agent_session_exporter.read.fields import InvalidPage
from agent_session_exporter.read.http_client import AuthRefused, BudgetExhausted, UpstreamError

#: Invalid items (and sanitised values) remembered by id, so each is counted and logged once.
SEEN_KEPT = 10_000


@dataclass(frozen=True)
class Failure:
    """Why a cycle failed: said in ``message``, the source shown down. An ``unexpected`` one (a fault:
    a bug in the exporter, its state store, a render) is logged as an error with its traceback."""

    message: str
    error: BaseException
    unexpected: bool = False
    #: The cycle limit it reached ("requests", "deadline"), if that is why.
    limit: str | None = None
    #: The reason the upstream's answer is counted invalid ("invalid_page"), if that is why.
    invalid: str | None = None

    @property
    def text(self) -> str:
        return str(self.error) or type(self.error).__name__


def poll_failure(exc: UpstreamError | TimeoutError, cycle_timeout: float) -> Failure:
    """Why a poll failed, as its upstream error (or its deadline, ``cycle_timeout``) says."""
    if isinstance(exc, AuthRefused):
        return Failure("credentials refused by the upstream API; check api_key/basic_auth", exc)
    if isinstance(exc, BudgetExhausted):
        return Failure(
            "the cycle used its request budget (max_requests_per_cycle) and was abandoned; raise it or "
            "shorten initial_lookback if the source is this busy",
            exc,
            limit="requests",
        )
    if isinstance(exc, InvalidPage):
        return Failure("upstream page has the wrong shape", exc, invalid="invalid_page")
    if isinstance(exc, UpstreamError):
        return Failure("upstream request failed", exc)
    return Failure(f"the cycle ran past its deadline (cycle_timeout {cycle_timeout:g}s) and was abandoned", exc, limit="deadline")


@dataclass(frozen=True)
class Probe:
    """A probe standing in for a sweep: whether the band held exactly the rows known (``clean``: True,
    False, or None when it could not tell), with the rows known there, or the error that failed it."""

    clean: bool | None
    known_rows: int = 0
    error: str | None = None


@dataclass
class CycleReport:
    """One cycle's outcome (or a poller's start, or a fault after its cycle): every field an event the
    self-metrics count and the log says, each from this value alone (``SourceReporter.publish``)."""

    #: Seconds the cycle started later than scheduled (None: not scheduled, the first or a lone cycle).
    lag: float | None = None
    #: Requests made, by kind: steady, sweep, lookup, probe.
    requests: Counter[str] = field(default_factory=Counter)
    #: The page size the provider asks for now (a page over the byte cap may have halved it).
    page_size: int | None = None
    #: Why the cycle failed, in order (a failed poll, then perhaps a fault while giving up on sessions).
    failures: list[Failure] = field(default_factory=list)
    #: When the poll's result was committed, by the exporter's clock (None: it was not).
    committed_at: float | None = None
    records: int = 0
    #: Sessions newly counted as finished.
    finished: int = 0
    #: Items skipped as invalid, by reason: their ids (None: an item without one), each item once.
    invalid: dict[str, list[str | None]] = field(default_factory=dict)
    #: Sessions whose text fields were made safe, by field, each session once.
    sanitized: dict[str, int] = field(default_factory=dict)
    #: Sessions counted without figures whose values were unusable.
    dropped_figures: int = 0
    #: The unknown statuses shown (as labels), once per session that newly shows one; and those
    #: never shown before.
    unknown_statuses: list[str] = field(default_factory=list)
    new_unknown_statuses: list[str] = field(default_factory=list)
    #: Whether the order the API promises held (None: not read this cycle).
    order_ok: bool | None = None
    stuck_pages: int = 0
    #: Pending sessions whose lookup failed: id -> error kind.
    unreadable: dict[str, str] = field(default_factory=dict)
    #: Pending sessions given up on: (session id, reason).
    dropped: list[tuple[str, str]] = field(default_factory=list)
    #: (family, label) -> the values newly folded into ``other`` past the family's series budget; and
    #: the families that began folding with them.
    folded: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    folding_started: list[str] = field(default_factory=list)
    #: The late-write band was swept; a probe stood in for the sweep.
    swept: bool = False
    probe: Probe | None = None
    #: Pending sessions and counted ids tracked after the cycle (None: unchanged).
    tracked: tuple[int, int] | None = None
    #: Seconds the cycle took.
    took: float | None = None
    #: A lookup-only cycle (the sessions pushes named, ``lookup_cycle.py``): it says nothing of whether
    #: the source's list can be read, so it marks the source neither up nor down.
    lookup_only: bool = False

    @property
    def failed(self) -> bool:
        return bool(self.failures)

    @property
    def result(self) -> str | None:
        """The last result line shown for the source (None: the cycle neither committed nor failed)."""
        if self.failures:
            return f"error: {self.failures[-1].text}"
        if self.committed_at is None:
            return None
        pending = self.tracked[0] if self.tracked is not None else 0
        return f"ok: {self.records} records, {self.finished} newly finished, {pending} active"

    def fold(self, folded: dict[tuple[str, str], list[str]], so_far: dict[tuple[str, str], list[str]]) -> None:
        """Note values newly folded (already in the state's ``so_far``): a family whose folded values
        are all new has begun folding."""
        for key, values in folded.items():
            self.folded.setdefault(key, []).extend(values)
        for family in sorted({family for family, _ in folded}):
            new = sum(len(values) for (name, _), values in folded.items() if name == family)
            if new == sum(len(values) for (name, _), values in so_far.items() if name == family):
                self.folding_started.append(family)


class Novelty:
    """What a source's reports said already, so that each bad item and each made-safe value is counted
    and logged once, and each unknown status logged once (a pending session is read every cycle)."""

    def __init__(self) -> None:
        self._statuses: set[str] = set()
        self._invalid: OrderedDict[Hashable, None] = OrderedDict()
        self._sanitized: OrderedDict[Hashable, None] = OrderedDict()

    def note(self, report: CycleReport, result: PollResult, plan: CyclePlan, status_label: Callable[[str], str]) -> None:
        """What a committed cycle says of its items (``status_label``: the status label's cap)."""
        for reason, item_id in plan.invalid:
            if item_id is None or _first_time(self._invalid, (reason, item_id)):
                report.invalid.setdefault(reason, []).append(item_id)
        for name, session_id in plan.sanitized:
            if _first_time(self._sanitized, (name, session_id)):
                report.sanitized[name] = report.sanitized.get(name, 0) + 1
        report.unknown_statuses = [status_label(status) for status in plan.unknown_statuses]
        report.new_unknown_statuses = list(self._new(report.unknown_statuses))
        report.records = len(result.records) + result.known_seen
        report.finished = plan.finished
        report.dropped_figures = plan.dropped_figures
        report.dropped += plan.dropped
        report.stuck_pages = result.stuck_pages
        report.unreadable = result.unreadable

    def _new(self, statuses: Iterable[str]) -> Iterable[str]:
        for status in statuses:
            if status not in self._statuses:
                self._statuses.add(status)
                yield status


def _first_time(seen: OrderedDict[Hashable, None], key: Hashable) -> bool:
    """Whether ``key`` is new to ``seen``, which then remembers it (the oldest forgotten past ``SEEN_KEPT``)."""
    if key in seen:
        return False
    seen[key] = None
    if len(seen) > SEEN_KEPT:
        seen.popitem(last=False)
    return True
