"""A fallback from a broken upstream promise, and when it is tried again without: one bad answer
costs one period of slower reads, not slower reads for good."""

from __future__ import annotations

from typing import Any

#: A fallback is tried without again this long after the upstream last broke what it stands in for (or
#: after the source's ``overlap``, where that is longer).
FALLBACK_RETRY_SECONDS = 600.0


class Fallback:
    """A slower way of reading, taken when an upstream broke what the fast way assumes (an order it
    promised, a field its items carry). It is used from that moment on; the fast way is tried again once
    per ``every`` seconds, and the fallback is dropped the first time a read the fast way sees the
    upstream behave. So one bad answer costs one period of slower reads, not slower reads for good.
    Taking it and dropping it are each logged."""

    def __init__(self, log: Any, every: float, taken: str, dropped: str, level: str = "warning") -> None:
        self.log = log
        self.every = every
        self.taken, self.dropped, self.level = taken, dropped, level
        #: When the upstream last broke the assumption (None: it holds, or held when last tried).
        self.broken_at: float | None = None

    def in_use(self, now: float) -> bool:
        """Whether a read at ``now`` takes the fallback (False: the fast way, at first or tried again)."""
        return self.broken_at is not None and now - self.broken_at < self.every

    def broke(self, now: float, **context: Any) -> None:
        """A read the fast way saw the upstream break the assumption: the fallback, from ``now`` on."""
        self.broken_at = now
        getattr(self.log, self.level)(self.taken, retry_in=self.every, **context)

    def held(self, now: float) -> None:
        """A read the fast way saw the assumption hold throughout: the fallback, if taken, is dropped."""
        if self.broken_at is not None and not self.in_use(now):
            self.broken_at = None
            self.log.info(self.dropped)
