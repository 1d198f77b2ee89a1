"""Per-source polling loop: window, dedup, pending sessions, one committed delta per cycle."""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict, deque
from typing import Any, Awaitable, Callable

import aiohttp
import structlog

from agent_session_exporter.count.cycle import CyclePlan, CycleSettings, ReadPlan, plan_cycle, plan_read
from agent_session_exporter.count.state import SourceState, SourceTotals, window_cutoff
from agent_session_exporter.count.sweeps import SweepSchedule
from agent_session_exporter.count.totals import (
    ACTIVE,
    FAMILIES,
    SeriesBudget,
    SessionExemplar,
    SourceView,
    TotalsBuilder,
    fold_counts,
    label_limiters,
)
from agent_session_exporter.keep.store import Store
from agent_session_exporter.model import PendingRef, PollResult, PollWindow, SessionRecord
from agent_session_exporter.read.fields import InvalidPage
from agent_session_exporter.read.http_client import AuthRefused, BudgetExhausted, UpstreamError
from agent_session_exporter.read.providers import make_provider
from agent_session_exporter.read.providers.base import Provider
from agent_session_exporter.read.source import SourceBase as SourceConfig
from agent_session_exporter.read.source import template_fields
from agent_session_exporter.safetext import safe_text
from agent_session_exporter.serve.alerting import WINDOW_SECONDS
from agent_session_exporter.serve.links import link_of
from agent_session_exporter.serve.selfmetrics import SelfMetrics, SourceSelfMetrics
from agent_session_exporter.serve.session_metrics import FAMILY_NAMES, SessionMetrics

#: Sessions that ended in error or timeout listed per source on the landing page.
RECENT_FAILURES = 20
#: Finished sessions whose workflow is remembered for their links (where the link needs it).
_WORKFLOWS_KEPT = 5_000
#: Invalid items (and sanitised values) remembered by id, so each is counted and logged once.
_INVALID_IDS_KEPT = 10_000


class CycleFault(Exception):
    """A cycle failed other than by its upstream (a bug in the exporter, the state store, a render):
    already logged, the source marked down. ``run`` ends with it, so that the task is restarted
    with backoff (``Exporter._supervise``)."""


class SourcePoller:
    """Polls one source on its interval and keeps its aggregates exact.

    A session is counted once, when first seen in a terminal status: the ids counted inside the
    overlap window are remembered, and the window's cutoff only moves forward, so an id that
    falls out of the window can never be read again.
    """

    def __init__(self, source: SourceConfig, provider: Provider, store: Store, metrics: SourceSelfMetrics,
                 buckets: tuple[float, ...], clock: Callable[[], float] = time.time,
                 on_change: Callable[[bool], None] = lambda sessions: None) -> None:
        self.source = source
        self.provider = provider
        self.store = store
        self.metrics = metrics
        self.buckets = buckets
        self.clock = clock
        #: Called after every cycle: True when the session metrics changed, not only the self-metrics.
        self.on_change = on_change
        self.log = structlog.get_logger(source=source.name, provider=source.provider)
        self.state: SourceState = store.load(source.name)
        self._check_histogram_bounds()
        self.status_label, self.model_label, self.workflow_label = label_limiters(
            self.state.totals, self.state.pending.values(), source.max_label_values)
        #: In memory only (a restart forgets them): per series the newest session, and the newest
        #: sessions that ended in error or timeout.
        self._finished_exemplars: dict[tuple[str, str, str], SessionExemplar] = {}
        self._duration_exemplars: dict[tuple[str, str, int], SessionExemplar] = {}
        #: Oldest end first.
        self.recent_failures: list[SessionRecord] = []
        #: This source's session metrics (a prometheus_client Collector).
        self.session_metrics = SessionMetrics(buckets, lambda: {source.name: self.snapshot()})
        #: Per committed cycle of the alert's window: (when, sessions finished, of which errors).
        self._recent_counts: deque[tuple[float, int, int]] = deque()
        self.link = link_of(source)
        #: Where the link needs a session's workflow: that of the sessions finished lately.
        self._workflow_of: OrderedDict[str, str] | None = (
            OrderedDict() if self.link and "workflow" in template_fields(self.link.template) else None)
        self._unknown_seen: set[str] = set()
        self._invalid_seen: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._sanitized_seen: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._count_folded_so_far()
        self._active = self._active_view()
        self.settings = CycleSettings(overlap=source.overlap, settle_after=source.settle_after,
                                      max_pending_age=source.max_pending_age)
        if provider.PROBES:
            metrics.probes_sweeps()
        if (line := provider.describe()):
            self.log.info(line)
        if (deprecated := source.deprecated):
            self.log.warning(deprecated)
        self.last_result = "not polled yet"
        self.last_success: float | None = None
        #: The unexpected error of the last cycle, if it had one (then ``run`` ends: see CycleFault).
        self.fault: Exception | None = None
        #: Cycles ended without a fault (a restart's backoff starts over once one has).
        self.cycles = 0
        #: Cycle number of each stale pending session's last lookup, so a capped budget rotates.
        self._looked_up: dict[str, int] = {}
        self._lookup_rounds = 0
        self.sweeps = SweepSchedule(source.overlap)
        #: How the loop spends the time until its next cycle (until ``stop``, or the delay): waiting, or
        #: serving the lookups of pushes meanwhile (``pushes.py``).
        self.between_cycles: Callable[[asyncio.Event, float], Awaitable[None]] = wait_until_stopped
        self._update_gauges()

    def _check_histogram_bounds(self) -> None:
        """Restored histogram counts are only meaningful with the buckets they were counted in."""
        totals = self.state.totals
        if totals.bounds == list(self.buckets):
            return
        if totals.duration_buckets:
            self.log.warning("duration_buckets changed since the state was written: this source's duration "
                             "histogram restarts from zero", was=totals.bounds, now=list(self.buckets))
        totals.duration_buckets.clear()
        totals.duration_sum.clear()
        totals.bounds = list(self.buckets)

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
            if due is not None:
                self.metrics.cycle_lag(max(0.0, started - due))
            await self.run_cycle()
            if self.fault is not None:
                raise CycleFault(f"{type(self.fault).__name__}: {self.fault}") from self.fault
            due = started + self.source.interval + offset
            offset = 0.0
            await self.between_cycles(stop, max(0.0, due - time.monotonic()))

    async def run_cycle(self) -> bool:
        """One poll; commit the planned delta and only then change the in-memory model and report.

        Whatever the poll's fate, pending sessions past ``max_pending_age`` are given up on. Every
        step is guarded: an upstream failure fails the cycle; anything else (the cycle's own steps
        after the poll included: reporting, gauges, the render) is a fault, logged with its
        traceback, the source marked down, and kept in ``fault``. Returns whether the cycle succeeded.
        """
        started = time.monotonic()
        ok = False
        self.fault = None
        before = self._session_fingerprint()
        try:
            now = self.clock()
            state = self.state
            floor = state.floor if state.floor is not None else now - self.source.initial_lookback
            overlap = self.source.overlap
            sweeps = self.sweeps
            reach = sweeps.reach(floor, state.watermark)
            cutoff = min(reach, window_cutoff(floor, state.watermark, overlap))
            sweep_due = sweeps.due(now)
            http = self.provider.http
            http.start_cycle(self.source.max_requests_per_cycle)
            read = self._plan_read(floor, reach, sweep_due)
            band: tuple[float, float] | None = None
            if (probe := self._probe_instead(read, floor, reach)) is not None:
                read, band = probe
            window = PollWindow(since=read.since, stale_pending=self._stale_to_check(read.stale), now=now,
                                known_finished=state.counted.keys(), stop_at_known=read.stop_at_known)
            result = await self._poll(window)
            lookups = result.lookup_requests if result is not None else 0
            self.metrics.cycle_requests("lookup", lookups)
            self.metrics.cycle_requests("sweep" if read.sweep else "steady", http.requests_this_cycle - lookups)
            if result is not None:
                watermark_before = state.watermark
                keep_from = None if read.sweep else reach
                builder = self._builder(now)
                plan = plan_cycle(state, result, now, floor, cutoff, self.settings, builder, keep_from=keep_from)
                builder.name_workflows(result.records, state.totals.names)
                self.store.commit(self.source.name, plan.delta, state.totals.plus(plan.delta.increments))
                plan.delta.apply_to(state)
                if read.sweep:
                    sweeps.swept(now, state.watermark)
                    self.metrics.sweep()
                sweeps.note_skipped(result.skipped, window_cutoff(floor, state.watermark, overlap)
                                    if keep_from is None else keep_from)
                self._note_sessions(builder, result.records, plan.delta.counted_add)
                self._report(result, plan)
                ok = True
                if band is not None:
                    requests = http.requests_this_cycle
                    sweeps.probed(await self._nothing_late(*band), now, watermark_before)
                    self.metrics.cycle_requests("probe", http.requests_this_cycle - requests)
            else:
                self._expire_after_failure(now, floor, cutoff)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - one source's bug (or its state's) must not stop the others
            self._fault("collection cycle failed", exc)
        finally:
            try:
                self.metrics.cycle_took(time.monotonic() - started)
                self.on_change(self._session_fingerprint() != before)
            except Exception as exc:  # noqa: BLE001 - the render and the self-metrics are guarded too
                self._fault("updating or rendering the source's metrics after its cycle failed", exc)
        if self.fault is None:
            self.cycles += 1
        return ok and self.fault is None

    def _plan_read(self, floor: float, reach: float, sweep_due: bool) -> ReadPlan:
        return plan_read(self.state, floor, self.source.overlap, self.provider.source.page_size, reach, sweep_due,
                         lookups=self.provider.PENDING_RECHECK == "lookup")

    def _probe_instead(self, read: ReadPlan, floor: float,
                       reach: float) -> tuple[ReadPlan, tuple[float, float]] | None:
        """Where the provider can vouch for a band of its list in a request or two (``Provider.PROBES``)
        and a due sweep costs more than the steady read: the steady read, and the band the sweep would
        have re-read beyond it, to probe after the read; None to read as planned."""
        if not (read.sweep and self.provider.PROBES and self.sweeps.may_probe and self.provider.trust_order):
            return None
        steady = self._plan_read(floor, reach, sweep_due=False)
        return None if steady.sweep or steady.since <= reach else (steady, (reach, steady.since))

    async def _nothing_late(self, low: float, high: float) -> bool | None:
        """Whether the list holds exactly the rows known with key times in [``low``, ``high``]: then
        nothing was written late there (None: the probe could not tell)."""
        known = self.sweeps.known_rows(self.state)
        try:
            async with asyncio.timeout(self.source.cycle_timeout):
                clean = await self.provider.band_holds(low, high, known)
        except (UpstreamError, InvalidPage, TimeoutError) as exc:
            self.log.warning("the probe before a sweep failed; sweeping next cycle", error=str(exc))
            return None
        if clean is not None:
            self.metrics.sweep_probe("clean" if clean else "changed")
        if clean is False:
            self.log.info("rows were written late behind the newest; sweeping next cycle",
                          known_rows=known.count(low, high))
        return clean

    def _session_fingerprint(self) -> tuple[int, dict[tuple[str, str], int], dict[str, str]]:
        """What the session metrics show changes with: sessions counted, active ones, workflow names
        (figures and exemplars change only as sessions are counted)."""
        totals = self.state.totals
        return sum(totals.finished.values()), self._active, dict(totals.names)

    async def _poll(self, window: PollWindow) -> PollResult | None:
        """The provider's poll within the cycle's request budget and deadline; None when it failed."""
        m = self.metrics
        try:
            async with asyncio.timeout(self.source.cycle_timeout):
                return await self.provider.read(window)
        except AuthRefused as exc:
            self._fail("credentials refused by the upstream API; check api_key/basic_auth", exc)
        except BudgetExhausted as exc:
            m.cycle_limit_reached("requests")
            self._fail("the cycle used its request budget (max_requests_per_cycle) and was abandoned; raise it or "
                       "shorten initial_lookback if the source is this busy", exc)
        except InvalidPage as exc:
            m.invalid("invalid_page")
            self._fail("upstream page has the wrong shape", exc)
        except UpstreamError as exc:
            self._fail("upstream request failed", exc)
        except TimeoutError as exc:
            m.cycle_limit_reached("deadline")
            self._fail(f"the cycle ran past its deadline (cycle_timeout {self.source.cycle_timeout:g}s) and was "
                       "abandoned", exc)
        finally:
            m.page_size(self.provider.source.page_size)  # a page over the byte cap may have halved it
        return None

    def _expire_after_failure(self, now: float, floor: float, cutoff: float) -> None:
        plan = plan_cycle(self.state, None, now, floor, cutoff, self.settings, self._builder())
        if not plan.delta.pending_remove:
            return
        self.store.commit(self.source.name, plan.delta, self.state.totals)
        plan.delta.apply_to(self.state)
        self._report_dropped(plan)
        self._active = self._active_view()
        self._update_gauges()

    def snapshot(self) -> SourceView:
        """What the renderer draws for this source, handed to it at scrape time."""
        return SourceView(provider=self.source.provider, totals=self.state.totals, active=self._active,
                          figures=self.provider.FIGURES, finished_exemplars=self._finished_exemplars,
                          duration_exemplars=self._duration_exemplars)

    def _builder(self, now: float = 0.0) -> TotalsBuilder:
        return TotalsBuilder(self.buckets, self.status_label, self.model_label, self.workflow_label, now,
                             self.source.max_series_per_family, self.state.totals)

    def _active_view(self) -> dict[tuple[str, str], int]:
        """The active gauge: pending sessions by (workflow, status), through the label caps and the
        gauge's series budget. The series it adds and the values it folds join the state here, after
        the commit: they follow from the pending sessions and the series before, both committed, so
        a restart before the next commit (which writes them) makes the same of them."""
        totals = self.state.totals
        folded: dict[tuple[str, str], list[str]] = {}
        budget = SeriesBudget(ACTIVE, self.source.max_series_per_family, totals.active_series, totals.folded, folded)
        active = fold_counts(self.state.active_by_status(self.status_label, self.workflow_label), budget)
        totals.add(SourceTotals(active_series=budget.new, folded=folded))
        self._report_folded(folded)
        return active

    def _count_folded_so_far(self) -> None:
        """Start the folding self-metric from the values the state says were folded (its series of
        the families this provider has exist from the start, at 0)."""
        folded = self.state.totals.folded
        figures = self.provider.FIGURES  # "tokens" and "cost": the families of those figures
        for family in FAMILIES:
            if family.name in ("tokens", "cost") and family.name not in figures:
                continue
            for label in family.folds:
                self.metrics.series_folded(FAMILY_NAMES[family.name], label, 0)
        for (family_name, label), values in folded.items():
            self.metrics.series_folded(FAMILY_NAMES[family_name], label, len(values))

    def _report_folded(self, folded: dict[tuple[str, str], list[str]]) -> None:
        """Count the values newly folded past a series budget (already in the state), and say so once
        a family starts folding."""
        so_far = self.state.totals.folded
        for (family, label), values in folded.items():
            self.metrics.series_folded(FAMILY_NAMES[family], label, len(values))
        for family in sorted({family for family, _ in folded}):
            new = sum(len(values) for (name, _), values in folded.items() if name == family)
            if new == sum(len(values) for (name, _), values in so_far.items() if name == family):
                self.log.warning("a session metric family reached its series budget: new label sets fold "
                                 "workflow, then model, then status into other", family=FAMILY_NAMES[family],
                                 max_series_per_family=self.source.max_series_per_family,
                                 labels=sorted(label for name, label in folded if name == family))

    def _note_sessions(self, builder: TotalsBuilder, records: list[SessionRecord], counted: dict[str, float]) -> None:
        """Keep what a committed cycle showed of its finished sessions: exemplars and failures."""
        exemplar = builder.exemplar
        for key, record in builder.finished_exemplars.items():
            self._finished_exemplars[key] = exemplar(record, 1.0)
        for bucket, record in builder.duration_exemplars.items():
            self._duration_exemplars[bucket] = exemplar(record, record.duration_seconds or 0.0)
        finished = sum(builder.totals.finished.values())
        if finished:
            self._recent_counts.append((builder.now, finished, sum(builder.totals.errors.values())))
        while self._recent_counts and builder.now - self._recent_counts[0][0] > WINDOW_SECONDS:
            self._recent_counts.popleft()
        if builder.failures:
            merged = self.recent_failures + builder.failures
            merged.sort(key=lambda r: r.finished_at if r.finished_at is not None else builder.now)
            self.recent_failures = merged[-RECENT_FAILURES:]
        if self._workflow_of is not None:
            self._workflow_of.update((r.session_id, r.workflow) for r in records if r.workflow and r.session_id in counted)
            while len(self._workflow_of) > _WORKFLOWS_KEPT:
                self._workflow_of.popitem(last=False)

    def recent_failure_ratio(self) -> tuple[int, int]:
        """Sessions finished in the alert's window (of committed cycles), and how many of them were
        errors as the alert counts them (``agent_session_errors_total``)."""
        return (sum(finished for _, finished, _ in self._recent_counts),
                sum(failed for _, _, failed in self._recent_counts))

    def session_url(self, session_id: str, workflow: str | None = None) -> str | None:
        """The provider's page of one session (None: no ``session_url``); MissingValue when the
        template needs the session's workflow and it is neither given nor known."""
        if self.link is None:
            return None
        if not workflow:
            pending = self.state.pending.get(session_id)
            workflow = (pending.workflow if pending else None) or (
                self._workflow_of.get(session_id) if self._workflow_of is not None else None)
        return self.link.url(session_id, workflow)

    def _stale_to_check(self, ids: tuple[str, ...]) -> tuple[PendingRef, ...]:
        """The pending sessions the read leaves to lookups: at most ``max_pending_checks`` a cycle, those
        checked longest ago first, so every one has its turn."""
        pending = self.state.pending
        stale = [PendingRef(sid, pending[sid].key_time) for sid in ids]
        self._lookup_rounds += 1
        self._looked_up = {ref.session_id: self._looked_up.get(ref.session_id, 0) for ref in stale}
        chosen = sorted(stale, key=lambda ref: (self._looked_up[ref.session_id], ref.key_time))
        chosen = chosen[:self.source.max_pending_checks]
        for ref in chosen:
            self._looked_up[ref.session_id] = self._lookup_rounds
        return tuple(chosen)

    def _fault(self, message: str, exc: Exception) -> None:
        self.fault = exc
        self._fail(message, exc, unexpected=True)

    def task_ended(self, exc: BaseException | None, restart_in: float) -> None:
        """The polling task ended other than by shutdown, and is restarted in ``restart_in`` seconds:
        said as an error, counted, and the source down until a cycle succeeds."""
        self.metrics.up(False)
        self.metrics.task_restarted()
        text = (str(exc) or type(exc).__name__) if exc is not None else "it returned while running"
        self.last_result = f"error: polling task ended ({text}); restarting"
        self.log.error("the source's polling task ended; restarting it", error=text, restart_in=restart_in,
                       exc_info=exc if exc is not None and not isinstance(exc, CycleFault) else None)

    def _fail(self, message: str, exc: BaseException, unexpected: bool = False) -> None:
        self.metrics.up(False)
        text = str(exc) or type(exc).__name__
        self.last_result = f"error: {text}"
        log = self.log.error if unexpected else self.log.warning
        log(message, error=text, error_type=type(exc).__name__, exc_info=exc if unexpected else None)

    def _report(self, result: PollResult, plan: CyclePlan) -> None:
        """Self-metrics and logs of a committed cycle (never before: a failed commit must not count twice)."""
        m = self.metrics
        self._report_invalid(plan.invalid)
        self._report_sanitized(plan.sanitized)
        if plan.dropped_figures:
            m.invalid("bad_figure", plan.dropped_figures)
            self.log.warning("sessions counted without figures whose values were unusable",
                             sessions=plan.dropped_figures)
        for status in plan.unknown_statuses:
            label = self.status_label(status)
            m.unknown_status(label)
            if label not in self._unknown_seen:
                self._unknown_seen.add(label)
                self.log.warning("unknown session status; active until it has a finish time, then outcome 'unknown'",
                                 status=label)
        self._report_dropped(plan)
        m.order_ok(self.provider.trust_order)  # the provider logs its fallback, each way
        if result.stuck_pages:
            m.pages_stuck(result.stuck_pages)
        if result.unreadable:
            self.log.warning("pending sessions could not be re-checked this cycle; they wait for the next",
                             sessions=len(result.unreadable), errors=sorted(set(result.unreadable.values())))
        self._report_folded(plan.delta.increments.folded)
        self.last_success = self.clock()
        m.up(True, self.last_success)
        self._active = self._active_view()
        self._update_gauges()
        self.last_result = (f"ok: {len(result.records)} records, {plan.finished} newly finished, "
                            f"{len(self.state.pending)} active")
        self.log.debug("cycle done", records=len(result.records), finished=plan.finished, pending=len(self.state.pending))

    def _report_invalid(self, invalid: list[tuple[str, str | None]]) -> None:
        """Count and log each bad item once (by id where it has one): one line per reason and cycle."""
        by_reason: dict[str, list[str | None]] = {}
        for reason, item_id in invalid:
            if item_id is None or _first_time(self._invalid_seen, (reason, item_id)):
                by_reason.setdefault(reason, []).append(item_id)
        for reason, ids in by_reason.items():
            self.metrics.invalid(reason, len(ids))
            self.log.warning("invalid upstream items skipped", reason=reason, items=len(ids),
                             example_id=next((safe_text(i[:64]) for i in ids if i), None))

    def _report_sanitized(self, sanitized: list[tuple[str, str]]) -> None:
        """Count each session's made-safe text fields once (a pending session is read every cycle)."""
        by_field: dict[str, int] = {}
        for field, session_id in sanitized:
            if _first_time(self._sanitized_seen, (field, session_id)):
                by_field[field] = by_field.get(field, 0) + 1
        for field, count in by_field.items():
            self.metrics.sanitized(field, count)
        if by_field:
            self.log.info("upstream text with control characters or lone surrogates made safe (U+FFFD)",
                          sessions_by_field=by_field)

    def _report_dropped(self, plan: CyclePlan) -> None:
        for sid, reason in plan.dropped:
            self.metrics.pending_dropped(reason)
            self.log.warning("pending session given up on; dropped", session_id=safe_text(sid[:64]), reason=reason,
                             max_pending_age=self.source.max_pending_age)

    def _update_gauges(self) -> None:
        self.metrics.tracked(len(self.state.pending), len(self.state.counted))


async def wait_until_stopped(stop: asyncio.Event, delay: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), timeout=delay)
    except asyncio.TimeoutError:
        pass


def _first_time(seen: OrderedDict[tuple[str, str], None], key: tuple[str, str]) -> bool:
    """Whether ``key`` is new to ``seen``, which then remembers it (the oldest forgotten past
    ``_INVALID_IDS_KEPT``)."""
    if key in seen:
        return False
    seen[key] = None
    if len(seen) > _INVALID_IDS_KEPT:
        seen.popitem(last=False)
    return True


def build_poller(source: SourceConfig, session: aiohttp.ClientSession, store: Store, self_metrics: SelfMetrics,
                    buckets: tuple[float, ...], clock: Callable[[], float] = time.time,
                    on_change: Callable[[bool], None] = lambda sessions: None,
                    sleep: Callable[[float], Any] = asyncio.sleep) -> SourcePoller:
    """The one way a source's poller is built (the app, the tests and the benchmarks use it). Its
    session metrics are ``poller.session_metrics``; its self-metrics, ``poller.metrics.registry``."""
    metrics = self_metrics.for_source(source)
    provider = make_provider(source, session, metrics, sleep=sleep, clock=clock)
    return SourcePoller(source, provider, store, metrics, buckets, clock=clock, on_change=on_change)
