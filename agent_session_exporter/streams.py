"""Event streams as hints: a source with ``push: sse`` keeps one connection to its upstream's activity
stream (Syntropic137's ``GET /sse/activity``), and each frame saying a session ended puts that
session in the source's queue of hints (``count/hints.py``), looked up by the source's loop between
its polls as a webhook's are (``pushes.py``). The stream is never data to count from, and it has no
replay: whatever it misses (while reconnecting, or ever) the next poll counts.

The connection is read frame by frame (``read/event_stream.py``), each frame at most
``MAX_FRAME_BYTES``; one silent for ``StreamTiming.silence`` seconds (2.5 of Syntropic137's 30 s
keepalives) is dead. A connection that ends is opened again after an exponential backoff with full
jitter (``first_backoff`` doubling up to ``max_backoff``; back to the first after a connection that
stayed up ``healthy_after``), or ``auth_backoff`` after 401/403. A change of state is logged once, not
every retry. The stream runs beside the source's polling loop on its task (``Exporter``), and ends
when the source stops: at shutdown, on SIGTERM, or when a reload removes or changes the source.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass
from typing import Any, Callable

import aiohttp

from agent_session_exporter.count.hints import Hint, HintQueue
from agent_session_exporter.poller import SourcePoller
from agent_session_exporter.read.event_stream import StreamEnded, read_stream
from agent_session_exporter.read.http_client import USER_AGENT
from agent_session_exporter.read.sse import SseEvent
from agent_session_exporter.read.syntropic137_activity import Malformed, read_frame
from agent_session_exporter.serve.streammetrics import StreamMetrics

#: A frame's cap (its lines and data): a Syntropic137 frame is one domain event, a few KiB; the same
#: cap as a webhook's body. A constant, not a key: no frame of a lifecycle feed comes near it.
MAX_FRAME_BYTES = 1024 * 1024
#: Malformed frames are logged at most this often per source (each is counted).
LOG_EVERY = 60.0


@dataclass(frozen=True)
class StreamTiming:
    #: Seconds without a byte after which a connection is dead.
    silence: float = 75.0
    first_backoff: float = 1.0
    max_backoff: float = 60.0
    #: After 401/403: the credentials will not change by themselves (a reload brings new ones at once).
    auth_backoff: float = 300.0
    #: A connection up this long was healthy: the next backoff starts from the first again.
    healthy_after: float = 60.0


def reconnect_delay(attempt: int, reason: str, timing: StreamTiming, rng: random.Random) -> float:
    """Seconds before the ``attempt``-th reconnect in a row (0: the first): full jitter, uniform between 0
    and ``first_backoff`` doubled ``attempt`` times, at most ``max_backoff``; ``auth_backoff`` after 401/403."""
    if reason == "auth":
        return timing.auth_backoff
    return rng.uniform(0, min(timing.max_backoff, timing.first_backoff * 2 ** min(attempt, 32)))


class ActivityStream:
    """One source's event stream, read until stopped; its frames become hints in ``queue``."""

    def __init__(
        self,
        poller: SourcePoller,
        path: str,
        queue: HintQueue,
        metrics: StreamMetrics,
        clock: Callable[[], float],
        on_change: Callable[[], None],
        timing: StreamTiming = StreamTiming(),
        rng: random.Random | None = None,
    ) -> None:
        self.poller, self.path, self.queue, self.metrics = poller, path, queue, metrics
        #: The exporter's clock: when a frame arrived (the push-to-count histogram starts there).
        self.clock = clock
        self.on_change = on_change
        self.timing = timing
        self.random = rng or random.Random()
        source = poller.source
        self.labels = (source.name, source.provider)
        self.log = poller.log
        #: What the log last said: None (nothing yet), "up", or why the stream keeps ending; and the
        #: failing state whose end (a connection again) was said.
        self._state: str | None = None
        self._recovered_from: str | None = None
        #: When the current connection was answered (monotonic), None before.
        self._opened_at: float | None = None
        self._warned_at = -LOG_EVERY

    async def run(self, stop: asyncio.Event) -> None:
        """Keep the stream read until ``stop``; nothing but cancellation ends it sooner."""
        connector = aiohttp.TCPConnector(limit=1, force_close=True)  # its own: never one of the polls' connections
        async with aiohttp.ClientSession(connector=connector) as session:
            reading = asyncio.ensure_future(self._keep_reading(session))
            stopping = asyncio.ensure_future(stop.wait())
            try:
                await asyncio.wait({reading, stopping}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in (reading, stopping):
                    task.cancel()
                await asyncio.gather(reading, stopping, return_exceptions=True)
                self._connected(False)
                self.on_change()

    async def _keep_reading(self, session: aiohttp.ClientSession) -> None:
        source, timing = self.poller.source, self.timing
        headers = {"User-Agent": USER_AGENT, **self.poller.provider.AUTH.headers(source)}
        attempt = 0
        while True:
            self._opened_at = None
            try:
                await read_stream(
                    session,
                    source.base_url + self.path,
                    self.path,
                    headers,
                    connect_timeout=source.timeout,
                    silence=timing.silence,
                    max_frame=MAX_FRAME_BYTES,
                    opened=self._opened,
                    received=self._received,
                )
            except StreamEnded as ended:
                reason, message, error = ended.reason, str(ended), None
            except Exception as exc:  # noqa: BLE001 - a bug must not end the stream for good: said, and retried
                reason, message, error = "error", f"{type(exc).__name__}: {exc}", exc
            self._connected(False)
            if reason == "oversized":
                self.metrics.frame(*self.labels, "other", "oversized")
            healthy = self._opened_at is not None and time.monotonic() - self._opened_at >= timing.healthy_after
            if healthy:
                attempt = 0
            delay = reconnect_delay(attempt, reason, timing, self.random)
            attempt += 1
            self.metrics.reconnects.labels(*self.labels, reason).inc()
            self._ended(reason, message, delay, error, healthy)
            self.on_change()
            await asyncio.sleep(delay)

    def _opened(self) -> None:
        self._opened_at = time.monotonic()
        self._connected(True)
        if self._state is None:
            self.log.info("the activity stream is connected", path=self.path)
            self._state = "up"
        elif self._state != "up" and self._recovered_from != self._state:
            self.log.info("the activity stream is connected again", path=self.path, after=self._state)
            self._recovered_from = self._state
        self.on_change()

    def _ended(self, reason: str, message: str, delay: float, error: Exception | None, healthy: bool) -> None:
        """Said once per change of state (up, or failing for a reason): a stream failing the same way at
        every retry, or cut by a proxy after each healthy stretch, does not fill the log. An error of
        the exporter's own is said every time, with its traceback."""
        if error is not None:
            self.log.error(
                "reading the activity stream failed; reconnecting", error=message, exc_info=error, reconnect_in=round(delay, 1)
            )
        if healthy:
            self._state, self._recovered_from = "up", None
            if reason in ("closed", "silent"):
                (self.log.info if reason == "silent" else self.log.debug)(
                    "the activity stream ended; reconnecting", reason=reason, error=message, reconnect_in=round(delay, 1)
                )
                return
        if reason != self._state:
            if error is None:
                self.log.warning(
                    "the activity stream ended; reconnecting (the next poll counts what it misses)",
                    reason=reason,
                    error=message,
                    reconnect_in=round(delay, 1),
                )
            self._state, self._recovered_from = reason, None
        else:
            self.log.debug("the activity stream ended again", reason=reason, reconnect_in=round(delay, 1))

    def _connected(self, up: bool) -> None:
        self.metrics.connected.labels(*self.labels).set(1 if up else 0)

    def _received(self, event: SseEvent) -> None:
        if event.data is None:
            kind, outcome = "keepalive", "ignored"
        else:
            try:
                frame = read_frame(event.data)
            except Malformed as exc:
                kind, outcome = exc.kind, "malformed"
                self._warn("a malformed frame of the activity stream was ignored", reason=str(exc))
            else:
                kind, outcome = frame.kind, "ignored"
                if frame.session_id is not None:
                    hint = Hint(self.labels[0], frame.session_id, self.clock(), "sse")
                    outcome = "accepted" if self.queue.put(hint) else "dropped"
        self.metrics.frame(*self.labels, kind, outcome)
        self.on_change()

    def _warn(self, what: str, **context: Any) -> None:
        now = time.monotonic()
        if now - self._warned_at >= LOG_EVERY:
            self._warned_at = now
            self.log.warning(what, **context)
