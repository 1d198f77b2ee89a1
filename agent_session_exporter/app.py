"""Wires config, providers, pollers, store and metrics into one running exporter."""

from __future__ import annotations

import asyncio
import gc
import time
from typing import Any, Callable

import aiohttp
import structlog
from prometheus_client import CollectorRegistry, disable_created_metrics
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from agent_session_exporter.config import Config, SourceConfig
from agent_session_exporter.keep.store import MemoryStore, Store
from agent_session_exporter.logs import redactor
from agent_session_exporter.poller import SourcePoller, wait_until_stopped
from agent_session_exporter.pushes import Pushes
from agent_session_exporter.read.providers import make_provider
from agent_session_exporter.serve.exposition import Exposition
from agent_session_exporter.serve.pushmetrics import PushMetrics
from agent_session_exporter.serve.selfmetrics import SelfMetrics

log = structlog.get_logger()
# ``*_created`` series double the exposition and no dashboard here uses them.
disable_created_metrics()


#: A source's polling task that ends other than by shutdown is restarted after this long at most;
#: the first restart waits ``Exporter.restart_backoff``, each further one in a row twice as long.
MAX_RESTART_BACKOFF = 60.0


class Exporter:
    def __init__(
        self, config: Config, store: Store | None = None, clock: Callable[[], float] = time.time, restart_backoff: float = 1.0
    ) -> None:
        self.config = config
        self.clock = clock
        self.restart_backoff = restart_backoff
        self.store: Store = store or MemoryStore()
        #: The exporter-wide self-metrics; each source's series are in a registry of its own.
        self.registry = CollectorRegistry(auto_describe=False)
        self.self_metrics = SelfMetrics(self.registry)
        self.live_registry = CollectorRegistry(auto_describe=False)
        ProcessCollector(registry=self.live_registry)
        PlatformCollector(registry=self.live_registry)
        self.exposition = Exposition(self.registry, self.live_registry)
        self.pollers: dict[str, SourcePoller] = {}
        #: The sources that take pushes (the webhook listener's ``PushSink``).
        self.pushes = Pushes(PushMetrics(self.registry), self._changed, clock)
        self.http_session: aiohttp.ClientSession | None = None
        self._tasks: dict[str, tuple[asyncio.Task[None], asyncio.Event]] = {}
        self._started = False
        self._reload_lock = asyncio.Lock()
        redactor.set_secrets(config.secrets)
        self.store.attach(lambda: {name: c.state for name, c in self.pollers.items()}, self._state_recreated)
        dropped = self.store.retain_only(_providers(config))
        if dropped:
            log.info("dropped state of sources no longer configured", sources=dropped)

    async def open(self) -> None:
        """Create the HTTP session and one collector per configured source."""
        self.http_session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit_per_host=4))
        for source in self.config.sources:
            self._add_source(source)
        self._changed()

    def _add_source(self, source: SourceConfig) -> None:
        assert self.http_session is not None
        name = source.name
        collector = self.pollers[name] = build_poller(
            source,
            self.http_session,
            self.store,
            self.self_metrics,
            self.config.duration_buckets,
            clock=self.clock,
            on_change=lambda sessions: self.exposition.source_changed(name, sessions),
        )
        self.exposition.add_source(name, {"self": collector.metrics.registry, "sessions": collector.session_metrics})
        self.pushes.add(collector)

    async def _remove_source(self, name: str, grace: float) -> None:
        await self._stop_tasks([name], grace)
        self.pushes.remove(name)
        del self.pollers[name]
        self.exposition.remove_source(name)
        self.self_metrics.forget(name)

    async def reload(self, config: Config, grace: float = 5.0) -> None:
        """Apply a new config: unchanged sources keep running untouched; removed ones stop and lose
        their series; changed or added ones (re)start from the store. One reload at a time: two in a
        row (two SIGHUPs 50 ms apart) must not orphan a polling task."""
        async with self._reload_lock:
            old = {s.name: s for s in self.config.sources}
            await self._reload(config, grace)
            self.note_reload(True)  # before the log line: what reads the log then sees the metric too
            new = {s.name: s for s in self.config.sources}
            log.info(
                "config reloaded",
                sources=list(new),
                restarted=sorted(n for n in new if old.get(n) != new[n]),
                removed=sorted(set(old) - set(new)),
            )

    async def _reload(self, config: Config, grace: float) -> None:
        if config.duration_buckets != self.config.duration_buckets:
            log.warning("duration_buckets changed: takes effect at the next restart")
            config = config.model_copy(update={"duration_buckets": self.config.duration_buckets})
        if config.listen != self.config.listen or config.state_path != self.config.state_path:
            log.warning("listen and state_path changes take effect at the next restart")
        redactor.set_secrets(self.config.secrets + config.secrets)
        old = {s.name: s for s in self.config.sources}
        new = {s.name: s for s in config.sources}
        for name in [n for n in old if old[n] != new.get(n)]:
            await self._remove_source(name, grace)
        self.store.retain_only(_providers(config))
        self.config = config
        for name, source in new.items():
            if name not in self.pollers:
                self._add_source(source)
                if self._started:
                    self._start_task(name)
        self._changed()

    def note_reload(self, ok: bool) -> None:
        """Record a configuration reload's result in the self-metrics."""
        self.self_metrics.reload_result(ok)
        self._changed()

    def _changed(self) -> None:
        self.exposition.global_changed()

    def _state_recreated(self) -> None:
        self.self_metrics.state_recreated.inc()
        self._changed()

    def connection_refused(self, reason: str) -> None:
        """The listener closed a connection unserved (counted in the exporter-wide self-metrics)."""
        self.self_metrics.connection_refused(reason)
        self._changed()

    async def run_once(self) -> dict[str, bool]:
        """One cycle of every source, concurrently."""
        results = await asyncio.gather(*(c.run_cycle() for c in self.pollers.values()))
        return dict(zip(self.pollers, results, strict=True))

    def start(self) -> None:
        """Run every source on its own task and interval, their cycles spread evenly over it. What lives
        by then (modules, config, restored state) lives on: it is collected once and frozen out of the
        garbage collector's later passes, which then stay short (``gc.freeze``)."""
        gc.collect()
        gc.freeze()
        self._started = True
        count = len(self.pollers)
        for position, (name, collector) in enumerate(self.pollers.items()):
            self._start_task(name, offset=collector.source.interval * position / count)

    def _start_task(self, name: str, offset: float = 0.0) -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(self._run(self.pollers[name], stop, offset), name=f"source:{name}")
        task.add_done_callback(_log_if_failed)
        self._tasks[name] = (task, stop)

    async def _run(self, poller: SourcePoller, stop: asyncio.Event, offset: float) -> None:
        """The source's polling loop, and beside it its event stream where it reads one (``push: sse``):
        both end at ``stop`` (the stream at once; the loop once its cycle is committed)."""
        stream = self.pushes.streams.get(poller.source.name)
        if stream is None:
            return await self._supervise(poller, stop, offset)
        reading = asyncio.create_task(stream.run(stop), name=f"stream:{poller.source.name}")
        reading.add_done_callback(_log_if_failed)
        try:
            await self._supervise(poller, stop, offset)
        finally:
            reading.cancel()  # it ends at ``stop`` as well; an error of its own is logged by the callback
            await asyncio.gather(reading, return_exceptions=True)

    async def _supervise(self, poller: SourcePoller, stop: asyncio.Event, offset: float) -> None:
        """Run a source's polling loop until ``stop``. Should it end otherwise (a cycle's fault, a bug
        in the loop), it is said as an error, the source shown down, and the loop started again
        after a backoff: ``restart_backoff``, doubled for each restart in a row without a cycle free
        of faults between them, up to ``MAX_RESTART_BACKOFF`` (or the interval, if longer)."""
        in_a_row = 0
        while not stop.is_set():
            cycles = poller.cycles
            error: Exception | None = None
            try:
                await poller.run(stop, offset)
            except Exception as exc:  # noqa: BLE001 - whatever ended it, the source must go on
                error = exc
            if stop.is_set():
                return
            in_a_row = 1 if poller.cycles > cycles else in_a_row + 1
            delay = min(self.restart_backoff * 2 ** (in_a_row - 1), max(MAX_RESTART_BACKOFF, poller.source.interval))
            poller.task_ended(error, delay)
            try:
                self.exposition.source_changed(poller.source.name, everything=False)  # source_up 0, meanwhile
            except Exception as exc:  # noqa: BLE001 - the restart must not depend on the render
                log.error("rendering a source's self-metrics failed", source=poller.source.name, error=str(exc), exc_info=exc)
            offset = 0.0
            await wait_until_stopped(stop, delay)

    async def _stop_tasks(self, names: list[str], grace: float) -> None:
        """Let in-flight cycles finish (their commit included) for ``grace`` seconds, then abandon them."""
        running = [self._tasks.pop(n) for n in names if n in self._tasks]
        for _, stop in running:
            stop.set()
        tasks = [task for task, _ in running]
        if tasks:
            _, still_running = await asyncio.wait(tasks, timeout=grace)
            for task in still_running:
                task.cancel()
            await asyncio.gather(*still_running, return_exceptions=True)

    async def close(self, grace: float = 5.0) -> None:
        await self._stop_tasks(list(self._tasks), grace)
        if self.http_session is not None:
            await self.http_session.close()
        self.store.close()

    def render_metrics(self, openmetrics: bool = False) -> bytes:
        """The exposition (classic text, or OpenMetrics), joined from blocks cached per source."""
        return self.exposition.render(openmetrics)

    async def render_metrics_async(self, openmetrics: bool = False, gzipped: bool = False) -> bytes:
        """``render_metrics`` (gzipped: its gzip), the sources that changed rendered one per step of the
        event loop."""
        return await self.exposition.render_async(openmetrics, gzipped)


def _log_if_failed(task: asyncio.Task[None]) -> None:
    """The last net: a source's supervising task itself ending in error is said, never silent."""
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.error("a source's task ended in error and is not restarted", task=task.get_name(), error=str(exc), exc_info=exc)


def _providers(config: Config) -> dict[str, str]:
    return {source.name: source.provider for source in config.sources}


def build_poller(
    source: SourceConfig,
    session: aiohttp.ClientSession,
    store: Store,
    self_metrics: SelfMetrics,
    buckets: tuple[float, ...],
    clock: Callable[[], float] = time.time,
    on_change: Callable[[bool], None] = lambda sessions: None,
    sleep: Callable[[float], Any] = asyncio.sleep,
) -> SourcePoller:
    """The one way a source's poller is built (the app, the tests and the benchmarks use it). Its
    session metrics are ``poller.session_metrics``; its self-metrics, ``poller.metrics.registry``."""
    metrics = self_metrics.for_source(source)
    provider = make_provider(source, session, metrics, sleep=sleep, clock=clock)
    return SourcePoller(source, provider, store, metrics, buckets, clock=clock, on_change=on_change)
