"""The self-metrics of pushes (webhooks, event streams): what became of each webhook push, and how long
a pushed session took to be counted (the streams' own: ``serve/streammetrics.py``). In the
exporter-wide registry: a push is counted as it arrives, between cycles, and the registry is
rendered again only at the next scrape."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

from agent_session_exporter.serve.streammetrics import StreamMetrics

#: What became of a push (an event; a request where the whole request is refused).
PUSH_OUTCOMES = (
    "accepted",  # a session to look up, queued (or already waiting: one lookup serves both)
    "duplicate",  # its idempotency key, or the same event, seen within 10 minutes
    "bad_signature",  # no signature, or not the source's: refused (401) before the body is read as JSON
    "unknown_source",  # no source of that name takes pushes (404; counted with source "")
    "unknown_workflow",  # about a workflow the source does not poll: ignored
    "malformed",  # not JSON, or no usable session id
    "oversized",  # a body over 1 MiB (413)
    "dropped",  # the source's queue of lookups was full: the next poll counts it
)
#: Seconds from a push to the count of its session (where the push's lookup counted it).
PUSH_TO_COUNT_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0)


class PushMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        p = "agent_session_exporter_"
        self.pushes = Counter(
            p + "pushes",
            "Pushes received (webhook events), by what became of them: " + ", ".join(PUSH_OUTCOMES) + ".",
            ("source", "provider", "outcome"),
            registry=registry,
        )
        self.push_to_count = Histogram(
            p + "push_to_count_seconds",
            "Seconds from a push (a webhook event, or a stream's frame) to the count of "
            "the session it named, where the lookup it caused counted it.",
            ("source", "provider"),
            registry=registry,
            buckets=PUSH_TO_COUNT_BUCKETS,
        )
        #: The event streams' own: connected, reconnects, frames.
        self.streams = StreamMetrics(registry)

    def add_source(self, source: str, provider: str, webhooks: bool = True) -> None:
        """A source that takes pushes: its series exist from the start, at 0 (``pushes_total``: webhooks'
        only; a stream's frames are counted by ``streams``)."""
        if webhooks:
            for outcome in PUSH_OUTCOMES:
                if outcome != "unknown_source":
                    self.pushes.labels(source, provider, outcome)
        self.push_to_count.labels(source, provider)

    def remove_source(self, source: str, provider: str) -> None:
        for outcome in PUSH_OUTCOMES:
            if outcome != "unknown_source":
                self.pushes.remove(source, provider, outcome)
        self.push_to_count.remove(source, provider)
        self.streams.remove_source(source, provider)

    def pushed(self, source: str, provider: str, outcome: str, count: int = 1) -> None:
        self.pushes.labels(source, provider, outcome).inc(count)

    def counted(self, source: str, provider: str, seconds: float) -> None:
        self.push_to_count.labels(source, provider).observe(max(0.0, seconds))
