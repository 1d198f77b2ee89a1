"""Pushes as hints: a webhook (or an event stream) says a session changed, and the source's loop
looks that session up; the lookup, never the push, is what counts. Here is the bookkeeping between
the two, whatever pushed: one queue per source, and the idempotency keys a pusher sends.

A queue holds at most one hint per session id (a second push for an id still waiting changes
nothing), at most ``MAX_WAITING`` ids, and lets them out at a bounded rate (a token bucket), so no
flood of pushes, replayed or not, can spend the upstream's request quota. Nothing is persisted:
after a restart the next poll counts what a push would have.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable, Hashable

#: Session ids waiting in one source's queue at most; a push past it is dropped (the poll counts it).
MAX_WAITING = 10_000
#: How long an idempotency key is remembered, and how many at most (the oldest forgotten first).
KEY_SECONDS = 600.0
MAX_KEYS = 10_000


@dataclass(frozen=True, slots=True)
class Hint:
    """One push's word that a session changed: a reason to look it up now."""

    source: str
    session_id: str
    #: When the push arrived, by the exporter's wall clock (the push-to-count histogram starts here).
    received_at: float
    #: What pushed: "webhook" or "sse".
    origin: str = "webhook"
    #: The workflow the push names, where it names one.
    workflow: str | None = None
    #: Lookups of it so far (a stream's hint is looked up again while the session still reads active).
    tries: int = 0


class HintQueue:
    """One source's hints, from the listener (or a stream) to the source's loop: coalesced per id,
    bounded, and let out at ``per_minute`` (in bursts of up to a tenth of it)."""

    def __init__(self, per_minute: float, max_waiting: int = MAX_WAITING, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = per_minute / 60.0
        self.burst = max(1.0, per_minute / 10.0)
        self.max_waiting = max_waiting
        self.clock = clock
        self._tokens = self.burst
        self._filled_at = clock()
        #: id -> its hint (the first pushed: the histogram times from the first word), oldest first.
        self._waiting: OrderedDict[str, Hint] = OrderedDict()
        self._arrived = asyncio.Event()

    def __len__(self) -> int:
        return len(self._waiting)

    def put(self, hint: Hint) -> bool:
        """Queue ``hint``; False when the queue is full (dropped). A hint for an id already waiting
        is taken as that one."""
        if hint.session_id not in self._waiting:
            if len(self._waiting) >= self.max_waiting:
                return False
            self._waiting[hint.session_id] = hint
        self._arrived.set()
        return True

    def take(self, skip: Callable[[str], bool] = lambda session_id: False) -> tuple[list[Hint], list[Hint]]:
        """The hints to look up now, oldest first, as many as the rate allows (each spends a token),
        and those ``skip`` says need no lookup (taken out at no cost)."""
        self._refill()
        chosen: list[Hint] = []
        skipped: list[Hint] = []
        for session_id in list(self._waiting):
            if skip(session_id):
                skipped.append(self._waiting.pop(session_id))
            elif self._tokens >= 1.0:
                self._tokens -= 1.0
                chosen.append(self._waiting.pop(session_id))
        if not self._waiting:
            self._arrived.clear()
        return chosen, skipped

    def ready_in(self) -> float | None:
        """Seconds until a waiting hint may be taken (0: now; None: nothing waits)."""
        if not self._waiting:
            return None
        self._refill()
        return 0.0 if self._tokens >= 1.0 else (1.0 - self._tokens) / self.rate

    async def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds until a hint may be taken; whether one may."""
        deadline = self.clock() + timeout
        while True:
            left = deadline - self.clock()
            due = self.ready_in()
            if due == 0.0:
                return True
            if left <= 0:
                return False
            try:
                if due is None:
                    await asyncio.wait_for(self._arrived.wait(), left)
                else:
                    await asyncio.sleep(min(due, left))
            except TimeoutError:
                return False

    def _refill(self) -> None:
        now = self.clock()
        self._tokens = min(self.burst, self._tokens + max(0.0, now - self._filled_at) * self.rate)
        self._filled_at = now


class SeenKeys:
    """Keys seen lately (a pusher's idempotency keys): each remembered ``ttl`` seconds, at most
    ``capacity`` of them (the oldest forgotten first)."""

    def __init__(self, ttl: float = KEY_SECONDS, capacity: int = MAX_KEYS, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.capacity = capacity
        self.clock = clock
        self._seen: OrderedDict[Hashable, float] = OrderedDict()

    def __len__(self) -> int:
        return len(self._seen)

    def first_time(self, key: Hashable) -> bool:
        """Whether ``key`` was not seen within ``ttl``; it is remembered from now either way."""
        now = self.clock()
        while self._seen and next(iter(self._seen.values())) <= now - self.ttl:
            self._seen.popitem(last=False)
        new = key not in self._seen
        self._seen[key] = now
        self._seen.move_to_end(key)
        while len(self._seen) > self.capacity:
            self._seen.popitem(last=False)
        return new
