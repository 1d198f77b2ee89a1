"""Pushes, wired: each source that takes them (a ``webhook_secret``, or ``push: sse``; and a provider
that can look a session up) has a queue of hints (``count/hints.py``), filled by the webhook listener
(``serve/webhooks.py``) or its event stream (``streams.py``), and served by the source's own loop between its
polls (``SourcePoller.between_cycles``): lookup-only cycles (``lookup_cycle.py``), never at the same
time as a poll. A session already counted is not looked up again, whatever pushes say.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from typing import Callable

import structlog

from agent_session_exporter.count.hints import Hint, HintQueue
from agent_session_exporter.lookup_cycle import run_lookup_cycle
from agent_session_exporter.poller import SourcePoller
from agent_session_exporter.read.push import PushLookups, PushSource, StreamSource
from agent_session_exporter.read.spec.provider import SpecProvider
from agent_session_exporter.read.spec.requests import StreamPushes
from agent_session_exporter.serve.pushmetrics import PushMetrics
from agent_session_exporter.streams import ActivityStream, StreamTiming

log = structlog.get_logger()


class Pushes:
    """The sources that take pushes, as the webhook listener sees them (a ``PushSink``)."""

    def __init__(
        self, metrics: PushMetrics, on_change: Callable[[], None] = lambda: None, clock: Callable[[], float] = time.time
    ) -> None:
        self.metrics = metrics
        #: Called after a push changed the exporter-wide self-metrics (they are rendered again at the next scrape).
        self.on_change = on_change
        self.clock = clock
        self.pollers: dict[str, SourcePoller] = {}
        self.queues: dict[str, HintQueue] = {}
        #: The sources with ``push: sse``: their streams, run beside their polling loops (``Exporter``).
        self.streams: dict[str, ActivityStream] = {}
        #: The streams' silence timeout and backoff (the tests shorten them).
        self.stream_timing = StreamTiming()

    def add(self, poller: SourcePoller) -> None:
        """Take the source's pushes, if it has a ``webhook_secret`` or ``push: sse`` (and its provider can
        look up)."""
        source = poller.source
        webhooks = isinstance(source, PushSource) and bool(source.webhook_secret)
        stream = _stream_of(poller)
        if not webhooks and stream is None:
            return
        if not poller.provider.can_look_up:
            log.warning(
                "the source's provider cannot look sessions up one by one: its pushes are not taken",
                source=source.name,
                provider=source.provider,
            )
            return
        assert isinstance(source, PushLookups)
        queue = self.queues[source.name] = HintQueue(source.max_push_lookups_per_minute)
        self.pollers[source.name] = poller
        self.metrics.add_source(source.name, source.provider, webhooks=webhooks)
        if stream is not None:
            self.metrics.streams.add_source(source.name, source.provider)
            self.streams[source.name] = ActivityStream(
                poller, stream.path, queue, self.metrics.streams, self.clock, self.on_change, self.stream_timing
            )

        async def between_cycles(stop: asyncio.Event, delay: float) -> None:
            await serve_hints(poller, queue, stop, delay, self._counted)

        poller.between_cycles = between_cycles

    def remove(self, name: str) -> None:
        poller = self.pollers.pop(name, None)
        self.queues.pop(name, None)
        self.streams.pop(name, None)
        if poller is not None:
            self.metrics.remove_source(name, poller.source.provider)

    # --- PushSink ---
    def webhook_secret(self, provider: str, source: str) -> bytes | None:
        poller = self.pollers.get(source)
        if poller is None or poller.source.provider != provider or not isinstance(poller.source, PushSource):
            return None
        return (poller.source.webhook_secret or "").encode() or None

    def polls_workflow(self, source: str, workflow: str) -> bool:
        poller = self.pollers.get(source)
        return poller is not None and poller.provider.polls_workflow(workflow)

    def hint(self, hint: Hint) -> bool:
        queue = self.queues.get(hint.source)
        return queue is not None and queue.put(hint)

    def pushed(self, source: str, provider: str, outcome: str, count: int = 1) -> None:
        self.metrics.pushed(source, provider, outcome, count)
        self.on_change()

    def _counted(self, poller: SourcePoller, hints: list[Hint], counted: set[str]) -> None:
        now = self.clock()
        for hint in hints:
            if hint.session_id in counted:
                self.metrics.counted(poller.source.name, poller.source.provider, now - hint.received_at)
        self.on_change()


def _stream_of(poller: SourcePoller) -> StreamPushes | None:
    """The stream a source with ``push: sse`` reads: its spec's (only a spec declaring one gives the key)."""
    if not isinstance(poller.source, StreamSource) or poller.source.push != "sse":
        return None
    pushes = poller.provider.SPEC.pushes if isinstance(poller.provider, SpecProvider) else None
    return pushes if isinstance(pushes, StreamPushes) else None


#: A stream's frame says a session ended, but its lookup may still read it running: Syntropic137's
#: session list is a projection of its own, fed apart from the activity feed. Such a session is looked
#: up again after these delays (seconds), then left to the next poll.
RELOOK_AFTER = (1.0, 5.0)


def relook(poller: SourcePoller, queue: HintQueue, hints: list[Hint]) -> None:
    """Put back, after a delay, the stream's hints whose lookup still read their session active."""
    loop = asyncio.get_running_loop()
    for hint in hints:
        if hint.origin == "sse" and hint.session_id in poller.state.pending and hint.tries < len(RELOOK_AFTER):
            loop.call_later(RELOOK_AFTER[hint.tries], queue.put, dataclasses.replace(hint, tries=hint.tries + 1))


async def serve_hints(
    poller: SourcePoller,
    queue: HintQueue,
    stop: asyncio.Event,
    delay: float,
    counted: Callable[[SourcePoller, list[Hint], set[str]], None],
) -> None:
    """Until ``stop`` or ``delay`` seconds: look up the sessions hints name as the queue lets them out,
    each batch in one lookup-only cycle. Hints for sessions already counted are dropped unread; a
    stream's hint whose session still reads active is put back for later (``relook``). A lookup cycle
    that fails unexpectedly is logged and its hints dropped (the next poll counts them)."""
    deadline = time.monotonic() + delay
    while not stop.is_set():
        left = deadline - time.monotonic()
        if left <= 0:
            return
        waiting = asyncio.ensure_future(queue.wait(left))
        stopping = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({waiting, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (waiting, stopping):
                task.cancel()
            await asyncio.gather(waiting, stopping, return_exceptions=True)
        if stop.is_set() or not waiting.result():
            continue
        hints, _ = queue.take(skip=lambda session_id: session_id in poller.state.counted)
        if not hints:
            continue
        try:
            done = await run_lookup_cycle(poller, hints)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - a push must never stop the source's polling
            poller.log.error(
                "a lookup cycle for pushes failed; its sessions wait for the next poll", error=str(exc), exc_info=exc
            )
            continue
        counted(poller, hints, done)
        relook(poller, queue, hints)
