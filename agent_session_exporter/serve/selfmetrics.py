"""The exporter's own health metrics: plain prometheus_client metrics, the exporter-wide ones in the
app's registry and each source's in a registry of its own."""

from __future__ import annotations

import platform
from typing import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import Metric

from agent_session_exporter import __version__
from agent_session_exporter.read.source import SourceBase as SourceConfig
from agent_session_exporter.safetext import TEXT_FIELDS
from agent_session_exporter.serve.selfmetric_families import DROP_REASONS, INVALID_REASONS, SourceMetricSet


class SelfMetrics:
    """The exporter-wide self-metrics (in ``registry``), and the source of each source's own."""

    def __init__(self, registry: CollectorRegistry) -> None:
        p = "agent_session_exporter_"
        self.sources: dict[str, SourceSelfMetrics] = {}
        #: Every source's self-metrics as one collector (for a registry that shows everything at once).
        self.all_sources = _AllSources(self.sources)
        self.state_recreated = Counter(
            p + "state_recreated",
            "Times the state file was found deleted or replaced while running and was recreated from memory.",
            registry=registry,
        )
        self.connections_refused = Counter(
            p + "web_connections_refused",
            "Connections to the exporter's HTTP port refused or cut off: past "
            "--web.max-connections (answered 503, or closed at once past the "
            "reserve), no request within the header timeout, an answer the client "
            "did not take within the write timeout, or too many pipelined requests.",
            ("reason",),
            registry=registry,
        )
        for reason in CONNECTION_REFUSED_REASONS:
            self.connections_refused.labels(reason)
        self.build_info = Gauge(
            p + "build_info",
            "Always 1: the exporter's version and the Python it runs on.",
            ("version", "python_version", "python_implementation"),
            registry=registry,
        )
        self.build_info.labels(__version__, platform.python_version(), platform.python_implementation()).set(1)
        self.reload_ok = Gauge(
            p + "config_last_reload_successful",
            "1 when the last configuration reload succeeded (as Prometheus exports it).",
            registry=registry,
        )
        self.reload_time = Gauge(
            p + "config_last_reload_success_timestamp_seconds",
            "Unix time of the last successful configuration load or reload.",
            registry=registry,
        )
        self.reload_result(True)

    def connection_refused(self, reason: str) -> None:
        self.connections_refused.labels(reason).inc()

    def reload_result(self, ok: bool) -> None:
        self.reload_ok.set(1 if ok else 0)
        if ok:
            self.reload_time.set_to_current_time()

    def for_source(self, source: SourceConfig) -> SourceSelfMetrics:
        metrics = self.sources[source.name] = SourceSelfMetrics(SourceMetricSet(), source.name, source.provider)
        metrics.page_size(source.page_size)
        return metrics

    def forget(self, name: str) -> None:
        """Drop every series of a source that left the config."""
        self.sources.pop(name, None)


class _AllSources:
    """Every source's self-metrics, family by family (a Collector)."""

    def __init__(self, sources: dict[str, SourceSelfMetrics]) -> None:
        self.sources = sources

    def collect(self) -> Iterator[Metric]:
        merged: dict[str, Metric] = {}
        for metrics in self.sources.values():
            for family in metrics.registry.collect():
                into = merged.setdefault(family.name, Metric(family.name, family.documentation, family.type))
                into.samples.extend(family.samples)
        yield from merged.values()


class SourceSelfMetrics:
    """The self-metrics of one source, as the poller reports them; also the HttpClient's
    RequestObserver. Series of known label values exist from the start, at 0."""

    def __init__(self, metrics: SourceMetricSet, name: str, provider: str) -> None:
        self.m = metrics
        self.registry = metrics.registry
        self.labels = labels = (name, provider)
        metrics.source_up.labels(*labels).set(0)
        metrics.retries.labels(*labels)
        metrics.pending.labels(*labels)
        metrics.tracked_ids.labels(*labels)
        metrics.cycle_lag.labels(*labels)
        metrics.order_ok.labels(*labels).set(1)
        for reason in INVALID_REASONS:
            metrics.invalid_records.labels(*labels, reason)
        for field in TEXT_FIELDS:
            metrics.sanitized_values.labels(*labels, field)
        for reason in DROP_REASONS:
            metrics.pending_dropped.labels(*labels, reason)
        for limit in ("requests", "deadline"):
            metrics.cycle_limit_reached.labels(*labels, limit)
        for kind in ("steady", "lookup", "sweep", "probe", "push"):
            metrics.cycle_requests.labels(*labels, kind)
        metrics.sweeps.labels(*labels)
        metrics.task_restarts.labels(*labels)
        metrics.stuck_pages.labels(*labels)

    # --- RequestObserver ---
    def request(self, code: str) -> None:
        self.m.requests.labels(*self.labels, code).inc()

    def retry(self) -> None:
        self.m.retries.labels(*self.labels).inc()

    def rate_limit_remaining(self, remaining: float) -> None:
        self.m.rate_limit_remaining.labels(*self.labels).set(remaining)

    # --- the poller's reports ---
    def cycle_lag(self, seconds: float) -> None:
        self.m.cycle_lag.labels(*self.labels).set(seconds)

    def cycle_took(self, seconds: float) -> None:
        self.m.collect_duration.labels(*self.labels).observe(seconds)

    def up(self, ok: bool, when: float | None = None) -> None:
        self.m.source_up.labels(*self.labels).set(1 if ok else 0)
        if ok and when is not None:
            self.m.last_success.labels(*self.labels).set(when)

    def invalid(self, reason: str, count: int = 1) -> None:
        self.m.invalid_records.labels(*self.labels, reason).inc(count)

    def sanitized(self, field: str, count: int) -> None:
        self.m.sanitized_values.labels(*self.labels, field).inc(count)

    def unknown_status(self, status: str) -> None:
        self.m.unknown_status.labels(*self.labels, status).inc()

    def pending_dropped(self, reason: str) -> None:
        self.m.pending_dropped.labels(*self.labels, reason).inc()

    def cycle_requests(self, kind: str, count: int) -> None:
        self.m.cycle_requests.labels(*self.labels, kind).inc(count)

    def sweep(self) -> None:
        self.m.sweeps.labels(*self.labels).inc()

    def probes_sweeps(self) -> None:
        """The source's provider probes instead of sweeping: its probe series exist from the start, at 0."""
        for outcome in ("clean", "changed"):
            self.m.sweep_probes.labels(*self.labels, outcome)

    def sweep_probe(self, outcome: str) -> None:
        self.m.sweep_probes.labels(*self.labels, outcome).inc()

    def cycle_limit_reached(self, limit: str) -> None:
        self.m.cycle_limit_reached.labels(*self.labels, limit).inc()

    def order_ok(self, ok: bool) -> None:
        self.m.order_ok.labels(*self.labels).set(1 if ok else 0)

    def task_restarted(self) -> None:
        self.m.task_restarts.labels(*self.labels).inc()

    def series_folded(self, family: str, label: str, values: int) -> None:
        """``values`` more values of ``label`` folded in ``family`` (0: the series exists from the start)."""
        self.m.series_folded.labels(*self.labels, family, label).inc(values)

    def pages_stuck(self, count: int) -> None:
        self.m.stuck_pages.labels(*self.labels).inc(count)

    def page_size(self, size: int) -> None:
        self.m.page_size.labels(*self.labels).set(size)

    def tracked(self, pending: int, counted_ids: int) -> None:
        self.m.pending.labels(*self.labels).set(pending)
        self.m.tracked_ids.labels(*self.labels).set(counted_ids)


#: Every reason the HTTP listener refuses or cuts off a connection.
CONNECTION_REFUSED_REASONS = ("max_connections", "header_timeout", "write_timeout", "max_pipelined")
