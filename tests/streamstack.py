"""The Syntropic137 simulator with its activity feed and an exporter whose source reads that feed
(``push: sse``), each a real aiohttp server or client on 127.0.0.1 (ports the OS chooses), sharing one
fake clock for the sessions (the stream's silence and backoff run on real time, made short); and what
the stream tests do with them."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, AsyncIterator

from agent_session_exporter.app import Exporter
from agent_session_exporter.config import parse_config
from agent_session_exporter.demo.runner import running_simulators
from agent_session_exporter.demo.server import PREFIXES, Simulators
from agent_session_exporter.demo.sessions import SimSession
from agent_session_exporter.streams import StreamTiming

from .helpers import FakeClock, total_of
from .sourcestack import SourceStack

#: Short enough for tests: a stream silent for 0.3 s is dead; backoffs of 10 to 50 ms.
FAST = StreamTiming(silence=0.3, first_backoff=0.01, max_backoff=0.05, auth_backoff=0.05, healthy_after=0.2)


class StreamStack(SourceStack):
    def __init__(self, simulators: Simulators, exporter: Exporter, clock: FakeClock) -> None:
        super().__init__(simulators, exporter, clock, "st")
        self.factory = simulators.factories["syntropic137"]
        self.feed = simulators.syntropic137.activity
        self.stream = exporter.pushes.streams["st"]

    def session(self, seconds_ago: float = 5.0, duration: float = 1.0, workflow: str = "wf-1") -> SimSession:
        """A new session, started ``seconds_ago``, that ends ``duration`` after its start (at a tick)."""
        session = self.factory.start_session(self.clock() - seconds_ago, duration)
        session.workflow_id = workflow
        return session

    def counted(self) -> float:
        return total_of(self.samples(), "agent_sessions_finished_total", source="st")

    def frames(self, kind: str, outcome: str) -> float:
        return total_of(
            self.samples(), "agent_session_exporter_push_stream_frames_total", source="st", type=kind, outcome=outcome
        )

    def reconnects(self, reason: str | None = None) -> float:
        return total_of(
            self.samples(),
            "agent_session_exporter_push_stream_reconnects_total",
            source="st",
            **({"reason": reason} if reason else {}),
        )

    def connected(self) -> float:
        return total_of(self.samples(), "agent_session_exporter_push_stream_connected", source="st")

    def observed(self) -> float:
        """Sessions whose push-to-count delay was observed."""
        return total_of(self.samples(), "agent_session_exporter_push_to_count_seconds_count", source="st")

    async def listening(self, connections: int = 1) -> None:
        """Until the exporter holds a stream open, the ``connections``-th the feed answered."""
        await self.until(
            lambda: self.connected() == 1 and self.feed.connections >= connections and len(self.feed.subscribers) >= 1
        )

    @contextlib.asynccontextmanager
    async def streaming(self) -> AsyncIterator[None]:
        """The source's stream read meanwhile (as ``Exporter`` runs it beside the polling loop)."""
        stop = asyncio.Event()
        task = asyncio.create_task(self.stream.run(stop))
        try:
            yield
        finally:
            stop.set()
            await asyncio.wait_for(task, 10)


@contextlib.asynccontextmanager
async def stream_stack(clock: FakeClock, timing: StreamTiming = FAST, **source: Any) -> AsyncIterator[StreamStack]:
    simulators = Simulators(clock=clock, rate=0)
    simulators.syntropic137.activity.keepalive = 0.1  # within the short silence
    async with running_simulators(simulators, tick_every=None) as base_url:
        config = parse_config(
            {
                "interval": 300,
                "sources": [
                    {
                        "name": "st",
                        "provider": "syntropic137",
                        "base_url": base_url + PREFIXES["syntropic137"],
                        "push": "sse",
                        **source,
                    }
                ],
            },
            {},
        )
        exporter = Exporter(config, clock=clock)
        exporter.pushes.stream_timing = timing
        await exporter.open()
        try:
            yield StreamStack(simulators, exporter, clock)
        finally:
            await exporter.close()
