"""The exporter's own health metrics: plain prometheus_client metrics, the exporter-wide ones in the
app's registry and each source's in a registry of its own."""

from __future__ import annotations

import platform
from typing import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import Metric

from agent_session_exporter import __version__
from agent_session_exporter.read.source import SourceBase as SourceConfig
from agent_session_exporter.safetext import ID_REASONS, TEXT_FIELDS

_LABELS = ("source", "provider")


class SourceMetricSet:
    """The metric objects of one source's self-metrics, in a registry of their own: a source's series
    are rendered (and dropped) together, so /metrics re-renders only the sources that changed."""

    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry(auto_describe=False)
        p = "agent_session_exporter_"
        self.source_up = Gauge(p + "source_up", "1 when the source's last collection cycle succeeded.",
                               _LABELS, registry=registry)
        self.requests = Counter(p + "requests", "Upstream requests by HTTP status or error kind.",
                                _LABELS + ("code",), registry=registry)
        self.retries = Counter(p + "retries", "Upstream requests retried after a transient failure.",
                               _LABELS, registry=registry)
        self.last_success = Gauge(p + "last_success_timestamp_seconds",
                                  "Unix time of the source's last successful collection cycle.",
                                  _LABELS, registry=registry)
        self.collect_duration = Histogram(p + "collect_duration_seconds", "Time of one collection cycle.",
                                          _LABELS, registry=registry,
                                          buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120))
        self.invalid_records = Counter(p + "invalid_records", "Upstream items or pages skipped as invalid.",
                                       _LABELS + ("reason",), registry=registry)
        self.sanitized_values = Counter(p + "sanitized_values",
                                        "Upstream text values (not ids) whose lone surrogates or control characters "
                                        "were replaced by U+FFFD, by record field; once per session and field.",
                                        _LABELS + ("field",), registry=registry)
        self.unknown_status = Counter(p + "unknown_status", "Records seen with a status the exporter does not know.",
                                      _LABELS + ("status",), registry=registry)
        self.pending_dropped = Counter(p + "pending_dropped",
                                       "Active sessions given up on (older than max_pending_age, or gone upstream).",
                                       _LABELS + ("reason",), registry=registry)
        self.pending = Gauge(p + "pending_sessions", "Active sessions tracked until they finish.",
                             _LABELS, registry=registry)
        self.rate_limit_remaining = Gauge(p + "rate_limit_remaining",
                                          "Requests left in the provider's rate-limit window (X-RateLimit-Remaining), "
                                          "where the API reports it.", _LABELS, registry=registry)
        self.cycle_requests = Counter(p + "cycle_requests",
                                      "Upstream requests (retries included) by the kind of cycle that sent them: "
                                      "steady (what is new, and pending sessions reached back to), lookup "
                                      "(pending sessions looked up one by one), sweep (the overlap window re-read "
                                      "for late writes), probe (asked instead of a due sweep) or push (sessions "
                                      "pushes named, looked up between cycles).",
                                      _LABELS + ("kind",), registry=registry)
        self.sweeps = Counter(p + "sweeps", "Cycles that swept the overlap window for late writes.", _LABELS,
                              registry=registry)
        self.sweep_probes = Counter(p + "sweep_probes", "Probes asked instead of a due sweep, by outcome: clean "
                                    "(the band holds only the rows known: no sweep needed) or changed (rows were "
                                    "written late: the next cycle sweeps).",
                                    _LABELS + ("outcome",), registry=registry)
        self.cycle_limit_reached = Counter(p + "cycle_limit_reached",
                                           "Cycles abandoned at their request budget (max_requests_per_cycle) or "
                                           "deadline (cycle_timeout).", _LABELS + ("limit",), registry=registry)
        self.order_ok = Gauge(p + "upstream_order_ok",
                              "1 while the source's pages come in the order the exporter asks for; 0 once they broke "
                              "it, while whole windows are read: the order is tried again once per max(overlap, "
                              "10 minutes), and trusted again once it holds.", _LABELS, registry=registry)
        self.cycle_lag = Gauge(p + "cycle_lag_seconds",
                               "How much later than its interval said the source's last cycle started: above 0, "
                               "the exporter (or its event loop) is overloaded.", _LABELS, registry=registry)
        self.task_restarts = Counter(p + "source_task_restarts",
                                     "Times the source's polling task ended other than by shutdown (an unexpected "
                                     "error in a cycle) and was restarted after a backoff.",
                                     _LABELS, registry=registry)
        self.series_folded = Counter(p + "series_folded",
                                     "Values of an upstream label that a session metric family folded into "
                                     "'other' once its series budget (max_series_per_family) was spent, each "
                                     "value once per family; kept in the state, as the session counters are.",
                                     _LABELS + ("family", "label"), registry=registry)
        self.stuck_pages = Counter(p + "stuck_pages",
                                   "Full pages whose items all share one key time, which the API offers no way past "
                                   "(no offset): the sessions beyond them in that instant may be missed.",
                                   _LABELS, registry=registry)
        self.page_size = Gauge(p + "page_size",
                               "Items the source asks for per page: its page_size, or less once a page over "
                               "max_response_bytes halved it (down to 10; kept for the next cycles).",
                               _LABELS, registry=registry)
        self.tracked_ids = Gauge(p + "tracked_session_ids",
                                 "Counted session ids kept to deduplicate the overlap window.",
                                 _LABELS, registry=registry)


class SelfMetrics:
    """The exporter-wide self-metrics (in ``registry``), and the source of each source's own."""

    def __init__(self, registry: CollectorRegistry) -> None:
        p = "agent_session_exporter_"
        self.sources: dict[str, SourceSelfMetrics] = {}
        #: Every source's self-metrics as one collector (for a registry that shows everything at once).
        self.all_sources = _AllSources(self.sources)
        self.state_recreated = Counter(p + "state_recreated",
                                       "Times the state file was found deleted or replaced while running and was "
                                       "recreated from memory.", registry=registry)
        self.connections_refused = Counter(p + "web_connections_refused",
                                           "Connections to the exporter's HTTP port refused or cut off: past "
                                           "--web.max-connections (answered 503, or closed at once past the "
                                           "reserve), no request within the header timeout, an answer the client "
                                           "did not take within the write timeout, or too many pipelined requests.",
                                           ("reason",), registry=registry)
        for reason in CONNECTION_REFUSED_REASONS:
            self.connections_refused.labels(reason)
        self.build_info = Gauge(p + "build_info", "Always 1: the exporter's version and the Python it runs on.",
                                ("version", "python_version", "python_implementation"), registry=registry)
        self.build_info.labels(__version__, platform.python_version(), platform.python_implementation()).set(1)
        self.reload_ok = Gauge(p + "config_last_reload_successful",
                               "1 when the last configuration reload succeeded (as Prometheus exports it).",
                               registry=registry)
        self.reload_time = Gauge(p + "config_last_reload_success_timestamp_seconds",
                                 "Unix time of the last successful configuration load or reload.", registry=registry)
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


#: Every reason an upstream item or page is counted as invalid.
INVALID_REASONS = ("missing_field", "wrong_type", "bad_timestamp", "not_an_object", "future_timestamp",
                   "invalid_page", "oversized_page", "bad_figure", *ID_REASONS,
                   "filter_ignored",  # a lookup's page that proved its filter ignored: counted each time
                   "next_url_elsewhere")  # a next-page URL off the source's origin: not followed
#: Every reason a pending session is given up on.
DROP_REASONS = ("max_pending_age", "gone", "unreadable", "workflow_removed")
#: Every reason the HTTP listener refuses or cuts off a connection.
CONNECTION_REFUSED_REASONS = ("max_connections", "header_timeout", "write_timeout", "max_pipelined")
