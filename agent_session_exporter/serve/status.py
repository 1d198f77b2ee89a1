"""What the web pages read of the running exporter: read-only views that the polling loop and the
app satisfy as they are, so that nothing under ``serve/`` imports the loop."""

from __future__ import annotations

from typing import Iterable, Mapping, Protocol

from agent_session_exporter.count.state import SourceState
from agent_session_exporter.model import SessionRecord
from agent_session_exporter.read.source import SourceBase
from agent_session_exporter.serve.links import SessionLink


class RecentView(Protocol):
    """A source's latest sessions (``serve/recent.py: RecentSessions``): those that ended in error or
    timeout, the error ratio of the alert's window, and the link to a session's page."""

    @property
    def link(self) -> SessionLink | None: ...
    @property
    def failures(self) -> Iterable[SessionRecord]: ...
    def failure_ratio(self) -> tuple[int, int]: ...
    def session_url(self, session_id: str, workflow: str | None = None) -> str | None: ...


class SourceStatus(Protocol):
    """One source as the landing page and the session redirect see it."""

    @property
    def source(self) -> SourceBase: ...
    @property
    def state(self) -> SourceState: ...
    @property
    def recent(self) -> RecentView: ...
    @property
    def last_result(self) -> str: ...
    @property
    def last_success(self) -> float | None: ...


class Served(Protocol):
    """The exporter as the HTTP face sees it."""

    @property
    def pollers(self) -> Mapping[str, SourceStatus]: ...
    def clock(self) -> float: ...
    def render_metrics(self, openmetrics: bool = False) -> bytes: ...
    async def render_metrics_async(self, openmetrics: bool = False, gzipped: bool = False) -> bytes: ...
