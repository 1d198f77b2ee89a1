"""Wires config, providers, collectors, store and metrics into one running exporter."""

from __future__ import annotations

import asyncio
import time
from typing import Callable

import aiohttp
import structlog
from prometheus_client import CollectorRegistry, disable_created_metrics, generate_latest
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from .aggregates import SessionMetrics, SourceView
from .collector import SourceCollector
from .config import Config
from .http_client import HttpClient
from .logs import redactor
from .providers import make_provider
from .selfmetrics import SelfMetrics
from .state import MemoryStore, Store

log = structlog.get_logger()
# ``*_created`` series double the exposition and no dashboard here uses them.
disable_created_metrics()


class Exporter:
    def __init__(self, config: Config, store: Store | None = None, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.clock = clock
        self.store: Store = store or MemoryStore()
        self.registry = CollectorRegistry(auto_describe=False)
        self.sessions = SessionMetrics(config.duration_buckets)
        self.registry.register(self.sessions)
        self.self_metrics = SelfMetrics(self.registry)
        self.live_registry = CollectorRegistry(auto_describe=False)
        ProcessCollector(registry=self.live_registry)
        PlatformCollector(registry=self.live_registry)
        self.collectors: dict[str, SourceCollector] = {}
        self.http_session: aiohttp.ClientSession | None = None
        self._version = 0
        self._rendered: tuple[int, bytes] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._stop = asyncio.Event()
        redactor.set_secrets(config.secrets)
        dropped = self.store.retain_only({s.name for s in config.sources})
        if dropped:
            log.info("dropped state of sources no longer configured", sources=dropped)

    async def open(self) -> None:
        """Create the HTTP session and one collector per configured source."""
        self.http_session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit_per_host=4))
        for source in self.config.sources:
            metrics = self.self_metrics.for_source(source)
            http = HttpClient(self.http_session, source, metrics)
            view = SourceView(provider=source.provider)
            self.sessions.sources[source.name] = view
            self.collectors[source.name] = SourceCollector(
                source, make_provider(source, http), self.store, view, metrics, self.config.duration_buckets,
                clock=self.clock, on_change=self._changed)
        self._changed()

    def _changed(self) -> None:
        self._version += 1

    async def run_once(self) -> dict[str, bool]:
        """One cycle of every source, concurrently."""
        results = await asyncio.gather(*(c.run_cycle() for c in self.collectors.values()))
        return dict(zip(self.collectors, results))

    def start(self) -> None:
        """Run every source on its own task and interval."""
        for collector in self.collectors.values():
            self._tasks.append(asyncio.create_task(collector.run(self._stop), name=f"source:{collector.source.name}"))

    async def close(self, grace: float = 5.0) -> None:
        self._stop.set()
        if self._tasks:
            _, still_running = await asyncio.wait(self._tasks, timeout=grace)
            for task in still_running:
                task.cancel()
            await asyncio.gather(*still_running, return_exceptions=True)
        if self.http_session is not None:
            await self.http_session.close()
        self.store.close()

    def render_metrics(self) -> bytes:
        """The exposition: session and self-metrics re-rendered only after a change, process metrics live."""
        if self._rendered is None or self._rendered[0] != self._version:
            version = self._version
            self._rendered = (version, generate_latest(self.registry))
        return self._rendered[1] + generate_latest(self.live_registry)
