"""Per-source polling loop: window, dedup, pending sessions, one committed delta per cycle."""

from __future__ import annotations

import asyncio
import time
from typing import Callable

import structlog

from .aggregates import LabelLimiter, SourceView, TotalsBuilder
from .config import SourceConfig
from .http_client import AuthRefused, UpstreamError
from .model import Phase, SessionRecord
from .providers import PendingRef, PollResult, PollWindow, Provider
from .providers.base import InvalidPage
from .selfmetrics import SourceSelfMetrics
from .state import CycleDelta, PendingSession, SourceState, Store, window_cutoff

_PHASE_RANK = {Phase.ACTIVE: 0, Phase.SETTLING: 1, Phase.FINISHED: 2}
SETTLING_STATUS = "running"


class SourceCollector:
    """Polls one source on its interval and keeps its aggregates exact.

    A session is counted once, when first seen in a terminal status: the ids counted inside the
    overlap window are remembered, and the window's cutoff only moves forward, so an id that
    falls out of the window can never be read again.
    """

    def __init__(self, source: SourceConfig, provider: Provider, store: Store, view: SourceView,
                 metrics: SourceSelfMetrics, buckets: tuple[float, ...],
                 clock: Callable[[], float] = time.time, on_change: Callable[[], None] = lambda: None) -> None:
        self.source = source
        self.provider = provider
        self.store = store
        self.metrics = metrics
        self.buckets = buckets
        self.clock = clock
        self.on_change = on_change
        self.log = structlog.get_logger(source=source.name, provider=source.provider)
        self.state: SourceState = store.load(source.name)
        self._check_histogram_bounds()
        self.view = view
        view.totals = self.state.totals
        view.active = self.state.active_by_status()
        self.status_label = LabelLimiter(source.max_label_values, {s for s, _ in self.state.totals.finished})
        self.model_label = LabelLimiter(source.max_label_values, self.state.totals.cost)
        self._unknown_seen: set[str] = set()
        if (line := provider.describe()):
            self.log.info(line)
        self.last_result = "not polled yet"
        self.last_success: float | None = None
        #: Cycle number of each stale pending session's last lookup, so a capped budget rotates.
        self._looked_up: dict[str, int] = {}
        self._cycles = 0
        self._order_broken = False
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

    async def run(self, stop: asyncio.Event) -> None:
        """Cycle every ``interval`` seconds (measured from cycle start) until ``stop`` is set."""
        while not stop.is_set():
            started = time.monotonic()
            await self.run_cycle()
            delay = max(0.0, self.source.interval - (time.monotonic() - started))
            try:
                await asyncio.wait_for(stop.wait(), timeout=delay)
            except asyncio.TimeoutError:
                pass

    async def run_cycle(self) -> bool:
        """One poll; on success, commit the delta and only then change the in-memory aggregates."""
        started = time.monotonic()
        now = self.clock()
        state = self.state
        floor = state.floor if state.floor is not None else now - self.source.initial_lookback
        cutoff = window_cutoff(floor, state.watermark, self.source.overlap)
        stale = self._stale_to_check(cutoff)
        window = PollWindow(since=cutoff, stale_pending=stale, now=now, known_finished=state.counted.keys())
        ok = False
        try:
            result = await self.provider.poll(window)
            delta = self._build_delta(result, now, floor, cutoff)
            self.store.commit(self.source.name, delta, state.totals.plus(delta.increments))
        except AuthRefused as exc:
            self._fail("credentials refused by the upstream API; check api_key/basic_auth", exc)
        except InvalidPage as exc:
            self.metrics.m.invalid_records.labels(*self.metrics.labels, "invalid_page").inc()
            self._fail("upstream page has the wrong shape", exc)
        except UpstreamError as exc:
            self._fail("upstream request failed", exc)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - one source's bug must not stop the others
            self._fail("collection cycle failed", exc, unexpected=True)
        else:
            delta.apply_to(state)
            self._report(result, delta)
            ok = True
        finally:
            self.metrics.m.collect_duration.labels(*self.metrics.labels).observe(time.monotonic() - started)
            self.on_change()
        return ok

    def _stale_to_check(self, cutoff: float) -> tuple[PendingRef, ...]:
        """Pending sessions older than the window. A provider that looks them up one by one gets at most
        ``max_pending_checks`` a cycle, those checked longest ago first, so every one has its turn."""
        stale = [PendingRef(sid, p.key_time) for sid, p in self.state.pending.items() if p.key_time < cutoff]
        if self.provider.PENDING_RECHECK != "lookup":
            return tuple(stale)
        self._cycles += 1
        self._looked_up = {ref.session_id: self._looked_up.get(ref.session_id, 0) for ref in stale}
        chosen = sorted(stale, key=lambda ref: (self._looked_up[ref.session_id], ref.key_time))
        chosen = chosen[:self.source.max_pending_checks]
        for ref in chosen:
            self._looked_up[ref.session_id] = self._cycles
        return tuple(chosen)

    def _fail(self, message: str, exc: BaseException, unexpected: bool = False) -> None:
        self.metrics.m.source_up.labels(*self.metrics.labels).set(0)
        self.last_result = f"error: {exc}"
        log = self.log.error if unexpected else self.log.warning
        log(message, error=str(exc), error_type=type(exc).__name__)

    def _report(self, result: PollResult, delta: CycleDelta) -> None:
        m, labels = self.metrics.m, self.metrics.labels
        for reason, count in result.invalid.items():
            m.invalid_records.labels(*labels, reason).inc(count)
        if result.unordered and not self._order_broken:
            self._order_broken = True
            m.order_ok.labels(*labels).set(0)
            self.log.error("the API ignores the order the exporter asked for; whole windows are read from now on "
                           "(slower, never wrong)", parameter=result.unordered)
        if result.unreadable:
            self.log.warning("pending sessions could not be re-checked this cycle; they wait for the next",
                             sessions=len(result.unreadable), errors=sorted(set(result.unreadable.values())))
        m.source_up.labels(*labels).set(1)
        self.last_success = self.clock()
        m.last_success.labels(*labels).set(self.last_success)
        self.view.active = self.state.active_by_status()
        self._update_gauges()
        finished = sum(delta.increments.finished.values())
        self.last_result = (f"ok: {len(result.records)} records, {finished} newly finished, "
                            f"{len(self.state.pending)} active")
        self.log.debug("cycle done", records=len(result.records), finished=finished, pending=len(self.state.pending))

    def _update_gauges(self) -> None:
        self.metrics.m.pending.labels(*self.metrics.labels).set(len(self.state.pending))
        self.metrics.m.tracked_ids.labels(*self.metrics.labels).set(len(self.state.counted))

    def _build_delta(self, result: PollResult, now: float, floor: float, cutoff: float) -> CycleDelta:
        state = self.state
        builder = TotalsBuilder(self.buckets, self.status_label, self.model_label)
        delta = CycleDelta(floor=floor, watermark=state.watermark, increments=builder.totals)
        newest = state.watermark if state.watermark is not None else float("-inf")
        counted, pending_sessions, add_finished = state.counted, state.pending, builder.add
        for record in _latest_by_id(result.records):
            sid = record.session_id
            if sid in counted:
                continue
            pending = pending_sessions.get(sid)
            key_time = record.key_time
            if key_time < cutoff and pending is None:
                continue  # outside the window and not ours to track
            if key_time > newest:
                newest = key_time if key_time < now else now
            if not record.known_status:
                self._note_unknown_status(record, pending)
            if record.phase is Phase.SETTLING:
                reference = (pending.end_seen_at if pending and pending.end_time == record.finished_at
                             and pending.end_seen_at is not None else min(now, record.finished_at or now))
                if now - reference < self.source.settle_after:
                    delta.pending_upsert[sid] = PendingSession(record.key_time, SETTLING_STATUS,
                                                               pending.first_seen if pending else now,
                                                               record.finished_at, reference)
                    continue
            elif record.phase is Phase.ACTIVE:
                delta.pending_upsert[sid] = PendingSession(record.key_time, record.status[:64],
                                                           pending.first_seen if pending else now)
                continue
            add_finished(record)
            delta.counted_add[sid] = key_time
            if pending is not None:
                delta.pending_remove.append(sid)
        newest = None if newest == float("-inf") else newest
        delta.watermark = newest
        self._expire_pending(delta, result, now)
        new_cutoff = window_cutoff(floor, newest, self.source.overlap)
        delta.counted_remove = [sid for sid, key_time in state.counted.items() if key_time < new_cutoff]
        for sid in [sid for sid, key_time in delta.counted_add.items() if key_time < new_cutoff]:
            del delta.counted_add[sid]
        return delta

    def _expire_pending(self, delta: CycleDelta, result: PollResult, now: float) -> None:
        m, labels = self.metrics.m, self.metrics.labels
        oldest_allowed = now - self.source.max_pending_age
        for sid in result.gone:
            if sid in self.state.pending and sid not in delta.pending_upsert and sid not in delta.counted_add:
                delta.pending_remove.append(sid)
                m.pending_dropped.labels(*labels, "gone").inc()
                self.log.warning("pending session no longer exists upstream; dropped", session_id=sid)
        for sid, pending in list(self.state.pending.items()) + list(delta.pending_upsert.items()):
            too_old = pending.key_time < oldest_allowed or pending.first_seen < oldest_allowed
            if too_old and sid not in delta.pending_remove:
                delta.pending_remove.append(sid)
                delta.pending_upsert.pop(sid, None)
                reason = "unreadable" if sid in result.unreadable else "max_pending_age"
                m.pending_dropped.labels(*labels, reason).inc()
                self.log.warning("session still pending after max_pending_age; dropped", session_id=sid[:64],
                                 reason=reason, max_pending_age=self.source.max_pending_age)

    def _note_unknown_status(self, record: SessionRecord, pending: PendingSession | None) -> None:
        if pending is not None and pending.status == record.status[:64] and record.phase is not Phase.FINISHED:
            return  # already noted for this session
        status = self.status_label(record.status)
        self.metrics.m.unknown_status.labels(*self.metrics.labels, status).inc()
        if status not in self._unknown_seen:
            self._unknown_seen.add(status)
            self.log.warning("unknown session status; active until it has a finish time, then outcome 'unknown'",
                             status=status)


def _latest_by_id(records: list[SessionRecord]) -> list[SessionRecord]:
    """One record per session id: the most advanced phase wins (a page may repeat a session)."""
    by_id: dict[str, SessionRecord] = {}
    for record in records:
        current = by_id.setdefault(record.session_id, record)
        if current is not record and _PHASE_RANK[record.phase] > _PHASE_RANK[current.phase]:
            by_id[record.session_id] = record
    return list(by_id.values())
