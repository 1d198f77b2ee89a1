"""The records every stage passes on: normalized sessions (what a provider turns its API items
into), and the contract of one poll (the window asked for, the result handed back, the rows the
exporter already knows)."""

from __future__ import annotations

import bisect
import enum
import math
from dataclasses import dataclass, field
from typing import Container, Mapping


class Outcome(str, enum.Enum):
    SUCCESS = "success"
    ERROR = "error"
    TIMEOUT = "timeout"
    CANCELLED = "cancelled"
    UNKNOWN = "unknown"


class Phase(str, enum.Enum):
    ACTIVE = "active"
    FINISHED = "finished"
    #: No status upstream (HoneyHive): finished once ``finished_at`` stops moving.
    SETTLING = "settling"


@dataclass(slots=True)
class SessionRecord:
    """One session as the exporter understands it, whatever the provider.

    ``key_time`` is the timestamp the provider's list is ordered and filtered by
    (usually the start); it decides which polling window the session belongs to.
    """

    session_id: str
    status: str
    phase: Phase
    key_time: float
    outcome: Outcome | None = None
    known_status: bool = True
    started_at: float | None = None
    finished_at: float | None = None
    duration_seconds: float | None = None
    warnings: float = 0.0
    error_text: bool = False
    tokens: dict[str, float] = field(default_factory=dict)
    cost_usd: float | None = None
    model: str | None = None
    #: The workflow's stable id where the provider has one ("" where it has no such notion), and its
    #: display name where the provider gives one.
    workflow: str = ""
    workflow_name: str | None = None
    #: A short, secret-free excerpt of the error text, for the landing page's recent failures.
    error_message: str | None = None
    #: Keys of optional figures whose values were unusable and left out (the session still counts).
    dropped_figures: tuple[str, ...] = ()
    #: Text fields that held lone surrogates or control characters, replaced (``safetext``).
    sanitized: tuple[str, ...] = ()
    #: When the response that brought this record arrived, by the exporter's clock (taken as its page
    #: is parsed: ``Provider.parse_items``). The settle clock, ``first_seen`` and ``max_pending_age``
    #: count from it; None (a record made by hand) stands for the cycle's start.
    observed_at: float | None = None

    @property
    def counts_as_error(self) -> bool:
        """The one definition of an error (README, rules and dashboard use it): outcome error or
        timeout, or any other ending but ``cancelled`` that carries an error text (a cancelled
        session's text is its stop reason, as Dify writes it)."""
        if self.outcome in (Outcome.ERROR, Outcome.TIMEOUT):
            return True
        return self.error_text and self.outcome is not Outcome.CANCELLED


class InvalidRecord(ValueError):
    """An API item that cannot become a record; ``reason`` is a short metric label."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


def classify(status: str, mapping: dict[str, Outcome | None], finished_at: float | None) -> tuple[Phase, Outcome | None, bool]:
    """Map a raw status to (phase, outcome, known) with the table of one provider.

    ``None`` in the mapping means an active status. An unknown status stays active
    while there is no finish time and finishes as ``unknown`` once there is one.
    """
    if status in mapping:
        outcome = mapping[status]
        return (Phase.ACTIVE, None, True) if outcome is None else (Phase.FINISHED, outcome, True)
    if finished_at is None:
        return Phase.ACTIVE, None, False
    return Phase.FINISHED, Outcome.UNKNOWN, False


#: A key time further than this ahead of the exporter's clock is not believed (a unit mistaken, microseconds
#: read as milliseconds): refused and counted (``future_timestamp``). Within it (an upstream clock ahead of
#: ours) it is taken, the watermark follows it, and a read bounded above asks this far ahead. One bound for
#: every provider.
MAX_FUTURE_SECONDS = 86400.0


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
    #: The poller's clock at the start of the cycle (None: the wall clock).
    now: float | None = None
    #: Ids already counted as finished (read-only), for providers that can skip work on them.
    known_finished: Container[str] = frozenset()
    #: The sessions pending, each with the status it was last seen in (read-only), for providers that
    #: track sessions their list hides.
    known_pending: Mapping[str, str] = field(default_factory=dict)
    #: A newest-first reader may stop after the first page holding a session in ``known_finished``
    #: (a steady read: what lies past it was read before; late writes are the sweep's).
    stop_at_known: bool = False
    #: The oldest key time the cycle counts (None: any): an item older, and not one of the
    #: ``known_pending``, is not the exporter's to count, as a counted one is not (``ignores``).
    cutoff: float | None = None

    def ignores(self, session_id: str, key_time: float) -> bool:
        """Whether the count would pass over a session read with this id and key time: counted before,
        or older than the cutoff and not pending (so a list read makes no record of it)."""
        return session_id in self.known_finished or (
            self.cutoff is not None and key_time < self.cutoff and session_id not in self.known_pending
        )

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
    #: Full pages whose items all share one key time: the list could not be paged past them.
    stuck_pages: int = 0
    #: Workflows no longer listed upstream: their pending sessions are given up on.
    removed_workflows: set[str] = field(default_factory=set)
    #: Rows the list holds that are not sessions to count (a Dify log row without a run): id to key
    #: time, so that a probe (``Provider.band_holds``) knows them too.
    skipped: dict[str, float] = field(default_factory=dict)
    #: Requests spent looking pending sessions up one by one (part of the cycle's requests).
    lookup_requests: int = 0
    #: Items read that the count would pass over (``PollWindow.ignores``): no record was made of them.
    known_seen: int = 0
    #: The newest key time among them that was counted before (a push's lookup may have counted a
    #: session ahead of the watermark: the list read in order moves the watermark past it).
    newest_known: float | None = None
    #: When the last page read arrived, by the exporter's clock (None: no page was read).
    observed: float | None = None


@dataclass(frozen=True)
class KnownRows:
    """The key times of the rows of a list the exporter knows (counted, pending, or not sessions),
    oldest first: what the read planner estimates pages from, and a probe compares the list with."""

    key_times: list[float]

    def count(self, low: float, high: float = math.inf) -> int:
        """Rows known with key times in [``low``, ``high``]."""
        return bisect.bisect_right(self.key_times, high) - bisect.bisect_left(self.key_times, low)

    @property
    def newest(self) -> float | None:
        return self.key_times[-1] if self.key_times else None
