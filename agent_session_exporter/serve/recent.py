"""What the web pages show of one source's latest sessions: those that ended in error or timeout, how
many finished in the error alert's window and how many of them failed, and the link to a session's
page. The polling loop notes each committed cycle here; the pages only read it
(``serve/status.py: RecentView``). In memory only: a restart forgets it.
"""

from __future__ import annotations

from collections import OrderedDict, deque

from agent_session_exporter.count.state import SourceState
from agent_session_exporter.model import SessionRecord
from agent_session_exporter.read.source import SourceBase, template_fields
from agent_session_exporter.serve.alerting import WINDOW_SECONDS
from agent_session_exporter.serve.links import SessionLink, link_of

#: Sessions that ended in error or timeout listed per source on the landing page.
RECENT_FAILURES = 20
#: Finished sessions whose workflow is remembered for their links (where the link needs it).
WORKFLOWS_KEPT = 5_000


class RecentSessions:
    """One source's latest sessions as the landing page and the session redirect read them."""

    def __init__(self, source: SourceBase, state: SourceState) -> None:
        self.state = state
        self.link: SessionLink | None = link_of(source)
        #: The latest sessions that ended in error or timeout, oldest end first.
        self.failures: list[SessionRecord] = []
        #: Per committed cycle of the alert's window: (when, sessions finished, of which errors).
        self._counts: deque[tuple[float, int, int]] = deque()
        #: Where the link needs a session's workflow: that of the sessions finished lately.
        self._workflow_of: OrderedDict[str, str] | None = (
            OrderedDict() if self.link and "workflow" in template_fields(self.link.template) else None
        )

    def note(
        self,
        now: float,
        finished: int,
        errors: int,
        failures: list[SessionRecord],
        records: list[SessionRecord],
        counted: dict[str, float],
    ) -> None:
        """A committed cycle at ``now``: ``finished`` sessions counted, ``errors`` of them as the alert
        counts them, ``failures`` those that ended in error or timeout; ``records`` read, of which
        the ids in ``counted`` were counted."""
        if finished:
            self._counts.append((now, finished, errors))
        while self._counts and now - self._counts[0][0] > WINDOW_SECONDS:
            self._counts.popleft()
        if failures:
            merged = self.failures + failures
            merged.sort(key=lambda r: r.finished_at if r.finished_at is not None else now)
            self.failures = merged[-RECENT_FAILURES:]
        if self._workflow_of is not None:
            self._workflow_of.update((r.session_id, r.workflow) for r in records if r.workflow and r.session_id in counted)
            while len(self._workflow_of) > WORKFLOWS_KEPT:
                self._workflow_of.popitem(last=False)

    def failure_ratio(self) -> tuple[int, int]:
        """Sessions finished in the alert's window (of committed cycles), and how many of them were
        errors as the alert counts them (``agent_session_errors_total``)."""
        return (sum(finished for _, finished, _ in self._counts), sum(failed for _, _, failed in self._counts))

    def session_url(self, session_id: str, workflow: str | None = None) -> str | None:
        """The provider's page of one session (None: no ``session_url``); MissingValue when the
        template needs the session's workflow and it is neither given nor known."""
        if self.link is None:
            return None
        if not workflow:
            pending = self.state.pending.get(session_id)
            workflow = (pending.workflow if pending else None) or (
                self._workflow_of.get(session_id) if self._workflow_of is not None else None
            )
        return self.link.url(session_id, workflow)
