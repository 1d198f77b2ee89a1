"""The self-metrics of event streams (a source with ``push: sse``): whether the stream is connected,
its reconnects by why the connection before ended, and its frames by kind and outcome. In the
exporter-wide registry, beside the pushes' (``serve/pushmetrics.py``)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

from agent_session_exporter.read.event_stream import END_REASONS
from agent_session_exporter.read.syntropic137_activity import FRAME_KINDS

#: What became of a frame.
FRAME_OUTCOMES = (
    "accepted",  # it names a session that ended: queued for a lookup (or joining one already waiting)
    "ignored",  # it names nothing to look up (the handshake, a keepalive, a start, a workflow's end)
    "malformed",  # not JSON, not an object, or a session's end naming no usable session id
    "oversized",  # over the frame cap: the stream reconnects
    "dropped",  # the source's queue of lookups was full: the next poll counts the session
)
#: The series that exist from the start, at 0: (kind, outcome).
_INITIAL = (
    [("session_completed", outcome) for outcome in ("accepted", "malformed", "dropped")]
    + [(kind, "ignored") for kind in FRAME_KINDS if kind != "session_completed"]
    + [("other", "malformed"), ("other", "oversized")]
)


class StreamMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        p = "agent_session_exporter_push_stream_"
        labels = ("source", "provider")
        self.connected = Gauge(
            p + "connected", "Whether the source's event stream is connected (1) or not (0).", labels, registry=registry
        )
        self.reconnects = Counter(
            p + "reconnects",
            "Connections to the source's event stream that ended, each "
            "followed by a reconnect, by why: " + ", ".join(END_REASONS) + ".",
            (*labels, "reason"),
            registry=registry,
        )
        self.frames = Counter(
            p + "frames",
            "Frames read from the source's event stream, by kind ("
            + ", ".join(FRAME_KINDS)
            + ") and outcome ("
            + ", ".join(FRAME_OUTCOMES)
            + ").",
            (*labels, "type", "outcome"),
            registry=registry,
        )

    def add_source(self, source: str, provider: str) -> None:
        """A source that streams: its series exist from the start, at 0."""
        self.connected.labels(source, provider).set(0)
        for reason in END_REASONS:
            self.reconnects.labels(source, provider, reason)
        for kind, outcome in _INITIAL:
            self.frames.labels(source, provider, kind, outcome)

    def remove_source(self, source: str, provider: str) -> None:
        self.connected.remove(source, provider)
        for reason in END_REASONS:
            self.reconnects.remove(source, provider, reason)
        for kind in FRAME_KINDS:
            for outcome in FRAME_OUTCOMES:
                self.frames.remove(source, provider, kind, outcome)

    def frame(self, source: str, provider: str, kind: str, outcome: str) -> None:
        self.frames.labels(source, provider, kind, outcome).inc()
