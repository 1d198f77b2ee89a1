"""Per-source polling loop: plan the read, poll, commit one delta, report the cycle; on an interval."""

from __future__ import annotations

import asyncio
import time
from typing import Any, Awaitable, Callable

import structlog

from agent_session_exporter.count.cycle import CyclePlan, CycleSettings, plan_cycle, plan_cycle_steps
from agent_session_exporter.count.reads import ReadPlanner
from agent_session_exporter.count.state import SourceState
from agent_session_exporter.count.totals import SourceCounter, TotalsBuilder
from agent_session_exporter.keep.store import Store
from agent_session_exporter.model import PollResult, PollWindow, SessionRecord
from agent_session_exporter.read.http_client import UpstreamError
from agent_session_exporter.read.providers.base import Provider
from agent_session_exporter.read.source import SourceBase as SourceConfig
from agent_session_exporter.serve.cycle_report import CycleReport, Failure, Novelty, Probe, poll_failure
from agent_session_exporter.serve.recent import RecentSessions
from agent_session_exporter.serve.reporting import SourceReporter
from agent_session_exporter.serve.selfmetrics import SourceSelfMetrics
from agent_session_exporter.serve.session_metrics import SessionMetrics


class CycleFault(Exception):
    """A cycle failed other than by its upstream (a bug in the exporter, the state store, a render):
    already logged, the source marked down. ``run`` ends with it, so that the task is restarted
    with backoff (``Exporter._supervise``)."""


class SourcePoller:
    """Polls one source on its interval and keeps its aggregates exact.

    A session is counted once, when first seen in a terminal status: the ids counted inside the
    overlap window are remembered, and the window's cutoff only moves forward, so an id that
    falls out of the window can never be read again. Each cycle's outcome is one CycleReport.
    """

    def __init__(
        self,
        source: SourceConfig,
        provider: Provider[Any],
        store: Store,
        metrics: SourceSelfMetrics,
        buckets: tuple[float, ...],
        clock: Callable[[], float] = time.time,
        on_change: Callable[[bool], None] = lambda sessions: None,
    ) -> None:
        self.source = source
        self.provider = provider
        self.store = store
        self.metrics = metrics
        self.buckets = buckets
        self.clock = clock
        #: Called after every cycle: True when the session metrics changed, not only the self-metrics.
        self.on_change = on_change
        self.log = structlog.get_logger(source=source.name, provider=source.provider)
        self.reporter = SourceReporter(metrics, self.log, source)
        self.novelty = Novelty()
        self.state: SourceState = store.load(source.name)
        rebucketed_from = self.state.totals.rebucket(list(buckets))
        #: The label caps and series budgets, the active gauge, the exemplars: kept across cycles.
        self.counter = SourceCounter(self.state, buckets, source.max_label_values, source.max_series_per_family)
        #: This source's session metrics (a prometheus_client Collector).
        self.session_metrics = SessionMetrics(
            buckets, lambda: {source.name: self.counter.view(source.provider, provider.FIGURES)}
        )
        #: What the web pages read of this source's latest sessions (``serve/status.py: SourceStatus``).
        self.recent = RecentSessions(source, self.state)
        self.reporter.started(self.state.totals, provider.FIGURES, provider.PROBES, provider.describe(), rebucketed_from)
        report = CycleReport()
        self._fold_active(report)
        self.reporter.publish(report)
        self.settings = CycleSettings(
            overlap=source.overlap, settle_after=source.settle_after, max_pending_age=source.max_pending_age
        )
        self.last_result = "not polled yet"
        self.last_success: float | None = None
        #: The unexpected error of the last cycle, if it had one (then ``run`` ends: see CycleFault).
        self.fault: Exception | None = None
        #: Cycles ended without a fault (a restart's backoff starts over once one has).
        self.cycles = 0
        #: What each cycle reads: the window, sweeps and probes, lookups.
        self.reads = ReadPlanner(
            source.overlap,
            source.initial_lookback,
            source.max_pending_checks,
            lookups=provider.PENDING_RECHECK == "lookup",
            probes=provider.PROBES,
        )
        #: How the loop spends the time until its next cycle (until ``stop``, or the delay): waiting, or
        #: serving the lookups of pushes meanwhile (``pushes.py``).
        self.between_cycles: Callable[[asyncio.Event, float], Awaitable[None]] = wait_until_stopped

    async def run(self, stop: asyncio.Event, offset: float = 0.0) -> None:
        """Cycle every ``interval`` seconds (measured from cycle start) until ``stop`` is set.

        The first cycle runs at once; the second waits ``offset`` more, so that many sources started
        together spread their cycles over the interval instead of all polling at the same moment.
        How much later than scheduled each cycle starts is the ``cycle_lag_seconds`` gauge.
        A cycle with a fault ends the loop with CycleFault (anything else raised here ends it too).
        """
        due: float | None = None
        while not stop.is_set():
            started = time.monotonic()
            await self.run_cycle(lag=None if due is None else max(0.0, started - due))
            if self.fault is not None:
                raise CycleFault(f"{type(self.fault).__name__}: {self.fault}") from self.fault
            due = started + self.source.interval + offset
            offset = 0.0
            await self.between_cycles(stop, max(0.0, due - time.monotonic()))

    async def run_cycle(self, lag: float | None = None) -> bool:
        """One poll; commit the planned delta and only then change the in-memory model and report.

        Whatever the poll's fate, pending sessions past ``max_pending_age`` are given up on. Every
        step is guarded: an upstream failure fails the cycle; anything else (the cycle's own steps
        after the poll included: reporting, gauges, the render) is a fault, logged with its
        traceback, the source marked down, and kept in ``fault``. Returns whether the cycle succeeded.
        """
        started = time.monotonic()
        report = CycleReport(lag=lag)
        self.fault = None
        before = self._session_fingerprint()
        try:
            await self._cycle(report)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - one source's bug (or its state's) must not stop the others
            self._fault(report, "collection cycle failed", exc)
        finally:
            report.took = time.monotonic() - started
            try:
                self._report(report)
                self.on_change(self._session_fingerprint() != before)
            except Exception as exc:  # noqa: BLE001 - the render and the self-metrics are guarded too
                self._report(self._fault(CycleReport(), "updating or rendering the source's metrics after its cycle failed", exc))
        if self.fault is None:
            self.cycles += 1
        return report.committed_at is not None and self.fault is None

    async def _cycle(self, report: CycleReport) -> None:
        """Plan the read, poll, commit, then keep what the cycle showed; each outcome noted in ``report``."""
        now = self.clock()
        state, http = self.state, self.provider.http
        http.start_cycle(self.source.max_requests_per_cycle)
        cycle = self.reads.plan(state, now, self.provider.source.page_size, self.provider.trust_order)
        read = cycle.plan
        window = PollWindow(
            since=read.since,
            stale_pending=cycle.stale,
            now=now,
            known_finished=state.counted.keys(),
            known_pending={i: p.status for i, p in state.pending.items()},
            stop_at_known=read.stop_at_known,
            cutoff=cycle.cutoff,
        )
        result = await self._poll(window, report)
        lookups = result.lookup_requests if result is not None else 0
        report.requests["lookup"] += lookups
        report.requests["sweep" if read.sweep else "steady"] += http.requests_this_cycle - lookups
        if result is None:
            self._expire_after_failure(report, now, cycle.floor, cycle.cutoff)
            return
        await asyncio.sleep(0)  # the last page's parse and the plan: two steps of the event loop, not one
        watermark_before = state.watermark
        builder = self.counter.builder(now)
        steps = plan_cycle_steps(state, result, now, cycle.floor, cycle.cutoff, self.settings, builder, keep_from=cycle.keep_from)
        while True:  # a few hundred records per step of the event loop
            try:
                next(steps)
            except StopIteration as done:
                plan: CyclePlan = done.value
                break
            await asyncio.sleep(0)
        builder.name_workflows(result.records, state.totals.names)
        if plan.delta.changes(state):
            self.store.commit(self.source.name, plan.delta, state.totals.plus(plan.delta.increments))
            plan.delta.apply_to(state)
        else:
            self.store.check()  # nothing to write; a state file deleted meanwhile is still recreated
        report.committed_at = self.clock()
        self.reads.committed(cycle, now, state.watermark, result.skipped)
        report.swept = read.sweep
        self._note_sessions(report, builder, result, plan)
        report.order_ok = self.provider.trust_order  # the provider logs its fallback, each way
        report.fold(plan.delta.increments.folded, state.totals.folded)
        self._fold_active(report, refold=bool(plan.delta.pending_upsert or plan.delta.pending_remove))
        if cycle.band is not None:
            requests = http.requests_this_cycle
            report.probe = await self._nothing_late(*cycle.band)
            self.reads.sweeps.probed(report.probe.clean, now, watermark_before)
            report.requests["probe"] += http.requests_this_cycle - requests

    def _note_sessions(self, report: CycleReport, builder: TotalsBuilder, result: PollResult, plan: CyclePlan) -> None:
        """Keep what a committed cycle showed of its sessions (exemplars, failures, links), and note in
        ``report`` what it says of them."""
        self.counter.exemplars.note(builder)
        self.recent.note(
            builder.now,
            plan.finished,
            sum(builder.totals.errors.values()),
            builder.failures,
            result.records,
            plan.delta.counted_add,
        )
        self.novelty.note(report, result, plan, self.counter.status_label)

    async def _nothing_late(self, low: float, high: float) -> Probe:
        """Whether the list holds exactly the rows known with key times in [``low``, ``high``]: then
        nothing was written late there (``clean`` None: the probe could not tell)."""
        known = self.reads.sweeps.known_rows(self.state)
        try:
            async with asyncio.timeout(self.source.cycle_timeout):
                clean = await self.provider.band_holds(low, high, known)
        except (UpstreamError, TimeoutError) as exc:
            return Probe(None, error=str(exc))
        return Probe(clean, known.count(low, high))

    def _session_fingerprint(self) -> tuple[int, dict[tuple[str, str], int], dict[str, str]]:
        """What the session metrics show changes with: sessions counted, active ones, workflow names
        (figures and exemplars change only as sessions are counted)."""
        totals = self.state.totals
        return sum(totals.finished.values()), self.counter.active, dict(totals.names)

    async def _poll(self, window: PollWindow, report: CycleReport) -> PollResult | None:
        """The provider's poll within the cycle's request budget and deadline; None when it failed."""
        try:
            async with asyncio.timeout(self.source.cycle_timeout):
                return await self.provider.read(window)
        except (UpstreamError, TimeoutError) as exc:
            report.failures.append(poll_failure(exc, self.source.cycle_timeout))
            return None
        finally:
            report.page_size = self.provider.source.page_size  # a page over the byte cap may have halved it

    def _expire_after_failure(self, report: CycleReport, now: float, floor: float, cutoff: float) -> None:
        plan = plan_cycle(self.state, None, now, floor, cutoff, self.settings, self.counter.builder())
        if not plan.delta.pending_remove:
            return
        self.store.commit(self.source.name, plan.delta, self.state.totals)
        plan.delta.apply_to(self.state)
        report.dropped += plan.dropped
        self._fold_active(report)

    @property
    def recent_failures(self) -> list[SessionRecord]:
        """The latest sessions that ended in error or timeout, oldest end first (``recent.failures``)."""
        return self.recent.failures

    def _fold_active(self, report: CycleReport, refold: bool = True) -> None:
        """The active gauge folded again (``refold``: False when no pending session changed, and the gauge
        with them); the values it newly folds and the sessions tracked noted."""
        if refold:
            report.fold(self.counter.fold_active(), self.state.totals.folded)
        report.tracked = (len(self.state.pending), len(self.state.counted))

    def _fault(self, report: CycleReport, message: str, exc: Exception) -> CycleReport:
        self.fault = exc
        report.failures.append(Failure(message, exc, unexpected=True))
        return report

    def _report(self, report: CycleReport) -> None:
        """Report the cycle; the source's last result and success (its status on the landing page) follow."""
        self.reporter.publish(report)
        if report.committed_at is not None:
            self.last_success = report.committed_at
        if (result := report.result) is not None:
            self.last_result = result

    def task_ended(self, exc: BaseException | None, restart_in: float) -> None:
        """The polling task ended other than by shutdown, and is restarted in ``restart_in`` seconds:
        said as an error, counted, and the source down until a cycle succeeds."""
        text = (str(exc) or type(exc).__name__) if exc is not None else "it returned while running"
        self.last_result = f"error: polling task ended ({text}); restarting"
        self.reporter.task_ended(text, restart_in, exc if exc is not None and not isinstance(exc, CycleFault) else None)


async def wait_until_stopped(stop: asyncio.Event, delay: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), timeout=delay)
    except asyncio.TimeoutError:
        pass
