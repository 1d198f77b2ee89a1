"""accept() errors logged at most once a second: out of file descriptors, asyncio would log a line
for every failed accept() and retry each a second later."""

from __future__ import annotations

import asyncio
import errno
import math
from typing import Any, Callable

import structlog

log = structlog.get_logger()

#: accept() errors that mean the process or the system is out of a resource (asyncio retries them).
_ACCEPT_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})


class AcceptErrorLog:
    """The loop's exception handler, with accept() errors logged at most once a second.

    Out of file descriptors, asyncio logs a line for every failed accept() (up to a backlog's worth
    each time the socket is ready) and retries each a second later: thousands of lines a minute.
    Every other exception goes to the handler that was there before (or the loop's default)."""

    def __init__(
        self, previous: Callable[[asyncio.AbstractEventLoop, dict[str, Any]], object] | None, every: float = 1.0
    ) -> None:
        self.previous = previous
        self.every = every
        self.last = -math.inf
        self.suppressed = 0

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        if not (isinstance(exc, OSError) and exc.errno in _ACCEPT_ERRNOS and "accept" in context.get("message", "")):
            if self.previous is not None:
                self.previous(loop, context)
            else:
                loop.default_exception_handler(context)
            return
        now = loop.time()
        if now - self.last < self.every:
            self.suppressed += 1
            return
        log.error(
            "cannot accept connections",
            error=exc.strerror,
            suppressed=self.suppressed,
            hint="raise the open files limit (ulimit -n) or lower --web.max-connections",
        )
        self.last, self.suppressed = now, 0
