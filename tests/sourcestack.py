"""What the push and stream test stacks share: one source of an exporter fed by the simulators on a
fake clock, its metrics read back, bounded waits, and its loop between two polls."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, AsyncIterator

from agent_session_exporter.app import Exporter
from agent_session_exporter.demo.server import Simulators

from .helpers import FakeClock, parse_exposition, total_of


class SourceStack:
    def __init__(self, simulators: Simulators, exporter: Exporter, clock: FakeClock, source: str) -> None:
        self.simulators, self.exporter, self.clock, self.source = simulators, exporter, clock, source
        self.poller = exporter.pollers[source]
        self.queue = exporter.pushes.queues[source]

    def tick(self, seconds: float = 0.0) -> None:
        """Time passes; sessions due end (and a simulator that pushes says so)."""
        self.clock.advance(seconds)
        self.simulators.tick()

    def samples(self) -> dict[Any, float]:
        return parse_exposition(self.exporter.render_metrics().decode())

    def lookups(self) -> float:
        return total_of(self.samples(), "agent_session_exporter_cycle_requests_total", source=self.source, kind="push")

    async def until(self, check: Any, attempts: int = 400) -> None:
        """Wait (bounded: ``attempts`` times 25 ms) until ``check()`` is true."""
        for _ in range(attempts):
            if check():
                return
            await asyncio.sleep(0.025)
        raise AssertionError("the condition was not met in time")

    @contextlib.asynccontextmanager
    async def serving(self) -> AsyncIterator[None]:
        """The source's loop between two polls: its hints served meanwhile (as ``SourcePoller.run`` does)."""
        stop = asyncio.Event()
        task = asyncio.create_task(self.poller.between_cycles(stop, 60.0))
        try:
            yield
        finally:
            stop.set()
            await asyncio.wait_for(task, 10)
