"""What people and Prometheus are told of one source's cycles: each CycleReport
(``serve/cycle_report.py``) counted in the source's self-metrics, then said in its log lines, both
from that one value. Counted first: whoever reads a line sees its count.
"""

from __future__ import annotations

from structlog.typing import FilteringBoundLogger

from agent_session_exporter.count.budget import FAMILIES
from agent_session_exporter.count.state import SourceTotals
from agent_session_exporter.read.source import SourceBase
from agent_session_exporter.safetext import safe_text
from agent_session_exporter.serve.cycle_report import CycleReport
from agent_session_exporter.serve.selfmetrics import SourceSelfMetrics
from agent_session_exporter.serve.session_metrics import FAMILY_NAMES


class SourceReporter:
    """The self-metrics and the log of one source."""

    def __init__(self, metrics: SourceSelfMetrics, log: FilteringBoundLogger, source: SourceBase) -> None:
        self.metrics = metrics
        self.log = log
        self.source = source

    def started(
        self,
        totals: SourceTotals,
        figures: frozenset[str],
        probes: bool,
        description: str | None,
        rebucketed_from: list[float] | None,
    ) -> None:
        """A source's poller was made from its restored ``totals``: the series of its folding and
        probes exist from the start; what it reads, and what of its settings or state is off, is said."""
        m = self.metrics
        for family in FAMILIES:
            if family.name in ("tokens", "cost") and family.name not in figures:
                continue  # "tokens" and "cost": the families of those figures
            for label in family.folds:
                m.series_folded(FAMILY_NAMES[family.name], label, 0)
        for (family_name, label), values in totals.folded.items():
            m.series_folded(FAMILY_NAMES[family_name], label, len(values))
        if probes:
            m.probes_sweeps()
        if rebucketed_from is not None:
            self.log.warning(
                "duration_buckets changed since the state was written: this source's duration histogram restarts from zero",
                was=rebucketed_from,
                now=totals.bounds,
            )
        if description:
            self.log.info(description)
        if deprecated := self.source.deprecated:
            self.log.warning(deprecated)

    def publish(self, report: CycleReport) -> None:
        """Count a cycle's report in the self-metrics, then log it."""
        self._count(report)
        self._log(report)

    def task_ended(self, text: str, restart_in: float, exc_info: BaseException | None) -> None:
        """The polling task ended other than by shutdown (``text``: why), and is restarted in
        ``restart_in`` seconds: the source down until a cycle succeeds."""
        self.metrics.up(False)
        self.metrics.task_restarted()
        self.log.error("the source's polling task ended; restarting it", error=text, restart_in=restart_in, exc_info=exc_info)

    def _count(self, report: CycleReport) -> None:
        m = self.metrics
        if report.lag is not None:
            m.cycle_lag(report.lag)
        for kind, requests in report.requests.items():
            m.cycle_requests(kind, requests)
        if report.page_size is not None:
            m.page_size(report.page_size)
        for failure in report.failures:
            if failure.limit is not None:
                m.cycle_limit_reached(failure.limit)
            if failure.invalid is not None:
                m.invalid(failure.invalid)
        for reason, ids in report.invalid.items():
            m.invalid(reason, len(ids))
        for name, count in report.sanitized.items():
            m.sanitized(name, count)
        if report.dropped_figures:
            m.invalid("bad_figure", report.dropped_figures)
        for status in report.unknown_statuses:
            m.unknown_status(status)
        for _, reason in report.dropped:
            m.pending_dropped(reason)
        if report.order_ok is not None:
            m.order_ok(report.order_ok)
        if report.stuck_pages:
            m.pages_stuck(report.stuck_pages)
        for (family, label), values in report.folded.items():
            m.series_folded(FAMILY_NAMES[family], label, len(values))
        if report.swept:
            m.sweep()
        if report.probe is not None and report.probe.clean is not None:
            m.sweep_probe("clean" if report.probe.clean else "changed")
        if report.committed_at is not None and not report.lookup_only:
            m.up(True, report.committed_at)
        if report.failed and not report.lookup_only:
            m.up(False)
        if report.tracked is not None:
            m.tracked(*report.tracked)
        if report.took is not None:
            m.cycle_took(report.took)

    def _log(self, report: CycleReport) -> None:
        log = self.log
        for failure in report.failures:
            say = log.error if failure.unexpected else log.warning
            say(
                failure.message,
                error=failure.text,
                error_type=type(failure.error).__name__,
                exc_info=failure.error if failure.unexpected else None,
            )
        for reason, ids in report.invalid.items():
            log.warning(
                "invalid upstream items skipped",
                reason=reason,
                items=len(ids),
                example_id=next((safe_text(i[:64]) for i in ids if i), None),
            )
        if report.sanitized:
            log.info(
                "upstream text with control characters or lone surrogates made safe (U+FFFD)", sessions_by_field=report.sanitized
            )
        if report.dropped_figures:
            log.warning("sessions counted without figures whose values were unusable", sessions=report.dropped_figures)
        for status in report.new_unknown_statuses:
            log.warning("unknown session status; active until it has a finish time, then outcome 'unknown'", status=status)
        for session_id, reason in report.dropped:
            log.warning(
                "pending session given up on; dropped",
                session_id=safe_text(session_id[:64]),
                reason=reason,
                max_pending_age=self.source.max_pending_age,
            )
        if report.unreadable and report.lookup_only:
            log.info(
                "sessions named by pushes could not be looked up; the next poll counts them",
                sessions=len(report.unreadable),
                errors=sorted(set(report.unreadable.values())),
            )
        elif report.unreadable:
            log.warning(
                "pending sessions could not be re-checked this cycle; they wait for the next",
                sessions=len(report.unreadable),
                errors=sorted(set(report.unreadable.values())),
            )
        for family in report.folding_started:
            log.warning(
                "a session metric family reached its series budget: new label sets fold "
                "workflow, then model, then status into other",
                family=FAMILY_NAMES[family],
                max_series_per_family=self.source.max_series_per_family,
                labels=sorted(label for name, label in report.folded if name == family),
            )
        if (probe := report.probe) is not None:
            if probe.error is not None:
                log.warning("the probe before a sweep failed; sweeping next cycle", error=probe.error)
            elif probe.clean is False:
                log.info("rows were written late behind the newest; sweeping next cycle", known_rows=probe.known_rows)
        if report.committed_at is not None:
            log.debug(
                "lookup cycle done" if report.lookup_only else "cycle done",
                records=report.records,
                finished=report.finished,
                pending=report.tracked[0] if report.tracked is not None else 0,
            )
