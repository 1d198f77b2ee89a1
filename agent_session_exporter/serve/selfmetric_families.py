"""The families of a source's self-metrics (``SourceMetricSet``) and the closed sets of reasons their
labels take: what ``serve/selfmetrics.py`` fills in."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from agent_session_exporter.safetext import ID_REASONS

_LABELS = ("source", "provider")

#: Every reason an upstream item or page is counted as invalid.
INVALID_REASONS = (
    "missing_field",
    "wrong_type",
    "bad_timestamp",
    "not_an_object",
    "future_timestamp",
    "invalid_page",
    "oversized_page",
    "bad_figure",
    *ID_REASONS,
    "filter_ignored",  # a lookup's page that proved its filter ignored: counted each time
    "next_url_elsewhere",
)  # a next-page URL off the source's origin: not followed
#: Every reason a pending session is given up on.
DROP_REASONS = ("max_pending_age", "gone", "unreadable", "workflow_removed")


class SourceMetricSet:
    """The metric objects of one source's self-metrics, in a registry of their own: a source's series
    are rendered (and dropped) together, so /metrics re-renders only the sources that changed."""

    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry(auto_describe=False)
        p = "agent_session_exporter_"
        self.source_up = Gauge(
            p + "source_up", "1 when the source's last collection cycle succeeded.", _LABELS, registry=registry
        )
        self.requests = Counter(
            p + "requests", "Upstream requests by HTTP status or error kind.", _LABELS + ("code",), registry=registry
        )
        self.retries = Counter(p + "retries", "Upstream requests retried after a transient failure.", _LABELS, registry=registry)
        self.last_success = Gauge(
            p + "last_success_timestamp_seconds",
            "Unix time of the source's last successful collection cycle.",
            _LABELS,
            registry=registry,
        )
        self.collect_duration = Histogram(
            p + "collect_duration_seconds",
            "Time of one collection cycle.",
            _LABELS,
            registry=registry,
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
        )
        self.invalid_records = Counter(
            p + "invalid_records", "Upstream items or pages skipped as invalid.", _LABELS + ("reason",), registry=registry
        )
        self.sanitized_values = Counter(
            p + "sanitized_values",
            "Upstream text values (not ids) whose lone surrogates or control characters "
            "were replaced by U+FFFD, by record field; once per session and field.",
            _LABELS + ("field",),
            registry=registry,
        )
        self.unknown_status = Counter(
            p + "unknown_status",
            "Records seen with a status the exporter does not know.",
            _LABELS + ("status",),
            registry=registry,
        )
        self.pending_dropped = Counter(
            p + "pending_dropped",
            "Active sessions given up on (older than max_pending_age, or gone upstream).",
            _LABELS + ("reason",),
            registry=registry,
        )
        self.pending = Gauge(p + "pending_sessions", "Active sessions tracked until they finish.", _LABELS, registry=registry)
        self.rate_limit_remaining = Gauge(
            p + "rate_limit_remaining",
            "Requests left in the provider's rate-limit window (X-RateLimit-Remaining), where the API reports it.",
            _LABELS,
            registry=registry,
        )
        self.cycle_requests = Counter(
            p + "cycle_requests",
            "Upstream requests (retries included) by the kind of cycle that sent them: "
            "steady (what is new, and pending sessions reached back to), lookup "
            "(pending sessions looked up one by one), sweep (the overlap window re-read "
            "for late writes), probe (asked instead of a due sweep) or push (sessions "
            "pushes named, looked up between cycles).",
            _LABELS + ("kind",),
            registry=registry,
        )
        self.sweeps = Counter(p + "sweeps", "Cycles that swept the overlap window for late writes.", _LABELS, registry=registry)
        self.sweep_probes = Counter(
            p + "sweep_probes",
            "Probes asked instead of a due sweep, by outcome: clean "
            "(the band holds only the rows known: no sweep needed) or changed (rows were "
            "written late: the next cycle sweeps).",
            _LABELS + ("outcome",),
            registry=registry,
        )
        self.cycle_limit_reached = Counter(
            p + "cycle_limit_reached",
            "Cycles abandoned at their request budget (max_requests_per_cycle) or deadline (cycle_timeout).",
            _LABELS + ("limit",),
            registry=registry,
        )
        self.order_ok = Gauge(
            p + "upstream_order_ok",
            "1 while the source's pages come in the order the exporter asks for; 0 once they broke "
            "it, while whole windows are read: the order is tried again once per max(overlap, "
            "10 minutes), and trusted again once it holds.",
            _LABELS,
            registry=registry,
        )
        self.cycle_lag = Gauge(
            p + "cycle_lag_seconds",
            "How much later than its interval said the source's last cycle started: above 0, "
            "the exporter (or its event loop) is overloaded.",
            _LABELS,
            registry=registry,
        )
        self.task_restarts = Counter(
            p + "source_task_restarts",
            "Times the source's polling task ended other than by shutdown (an unexpected "
            "error in a cycle) and was restarted after a backoff.",
            _LABELS,
            registry=registry,
        )
        self.series_folded = Counter(
            p + "series_folded",
            "Values of an upstream label that a session metric family folded into "
            "'other' once its series budget (max_series_per_family) was spent, each "
            "value once per family; kept in the state, as the session counters are.",
            _LABELS + ("family", "label"),
            registry=registry,
        )
        self.stuck_pages = Counter(
            p + "stuck_pages",
            "Full pages whose items all share one key time, which the API offers no way past "
            "(no offset): the sessions beyond them in that instant may be missed.",
            _LABELS,
            registry=registry,
        )
        self.page_size = Gauge(
            p + "page_size",
            "Items the source asks for per page: its page_size, or less once a page over "
            "max_response_bytes halved it (down to 10; kept for the next cycles).",
            _LABELS,
            registry=registry,
        )
        self.tracked_ids = Gauge(
            p + "tracked_session_ids", "Counted session ids kept to deduplicate the overlap window.", _LABELS, registry=registry
        )
