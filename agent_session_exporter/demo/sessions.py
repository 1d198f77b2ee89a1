"""Simulated sessions: they arrive, run, and finish with a provider's statuses."""

from __future__ import annotations

import random
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable

# provider -> (active statuses, [(terminal status, outcome, weight)])
PROVIDER_STATUSES: dict[str, tuple[tuple[str, ...], list[tuple[str, str, float]]]] = {
    # The demo's failure rates stay below the shipped alerts' thresholds (a demo that pages is a broken
    # demo; tests/test_demo.py holds them to it); the tests raise them with set_error_weight.
    "whatabot": (("running", "active"), [("completed", "success", 90), ("error", "error", 6), ("timeout", "timeout", 4)]),
    "dify": (
        ("running", "paused", "suspended"),
        [("succeeded", "success", 78), ("partial-succeeded", "success", 8), ("failed", "error", 7), ("stopped", "cancelled", 7)],
    ),
    "syntropic137": (("running",), [("completed", "success", 86), ("failed", "error", 8), ("cancelled", "cancelled", 6)]),
    "honeyhive": (("running",), [("ended", "success", 92), ("ended", "error", 8)]),
    # A handoff is a pause for a human (handoff -> running | ended | failed), never an end.
    "kapso": (("running", "waiting", "handoff"), [("ended", "success", 92), ("failed", "error", 8)]),
    # n8n: 'crashed' is a run a restart cut short, 'canceled' a stop or a workflow timeout (demo/n8n.py).
    "n8n": (
        ("running", "waiting"),
        [("success", "success", 90), ("error", "error", 6), ("crashed", "error", 1), ("canceled", "cancelled", 3)],
    ),
}
#: Dify writes a stopped run's stop reason into ``error``; it is not an error.
DIFY_STOP_REASONS = ("Stopped by user.", "Stopped by output moderation.")
#: Syntropic137 fails sessions orphaned by a framework restart, with ``completed_at`` = now and no duration.
ORPHANED = "Orphaned: framework restarted while agent was active"
MODELS = (
    "claude-sonnet-4",
    "claude-haiku-4",
    "claude-opus-4",
    "gpt-4.1",
    "gpt-4.1-mini",
    "o3",
    "gemini-2.5-pro",
    "gemini-2.5-flash",
    "mistral-large",
    "llama-4-maverick",
)


@dataclass
class SimSession:
    id: str
    started_at: float
    planned_end: float
    status: str
    outcome: str | None = None
    ended_at: float | None = None
    last_event_at: float = 0.0
    warnings: int = 0
    tokens: dict[str, int] = field(default_factory=dict)
    cost: float = 0.0
    model: str = ""
    workflow_id: str = ""
    error: str | None = None
    #: False for a finished session whose API reports no duration (a Syntropic137 orphan).
    duration_known: bool = True
    #: True once the session has been in a handoff (Kapso): the tests check some have.
    handed_off: bool = False

    @property
    def running(self) -> bool:
        return self.ended_at is None


@dataclass
class Truth:
    """What the simulator has finished: the exporter's counters must end up equal to it."""

    finished: Counter[tuple[str, str]] = field(default_factory=Counter)  # (status, outcome)
    warnings: int = 0
    errors: int = 0
    tokens: Counter[str] = field(default_factory=Counter)
    cost: dict[str, float] = field(default_factory=dict)  # model -> USD
    duration_sum: float = 0.0
    #: Finished sessions with a known duration (the histogram's count).
    durations: int = 0


class SessionFactory:
    """Creates and finishes sessions for one provider, deterministically for a seed."""

    def __init__(
        self,
        provider: str,
        clock: Callable[[], float],
        seed: int = 1,
        rate: float = 0.5,
        min_duration: float = 2.0,
        max_duration: float = 40.0,
        workflow_ids: tuple[str, ...] = ("wf-1",),
        error_weight: float = 1.0,
        retention: float | None = 3600.0,
    ) -> None:
        self.provider = provider
        self.clock = clock
        self.random = random.Random(seed)
        self.rate = rate
        self.min_duration = min_duration
        self.max_duration = max_duration
        self.workflow_ids = workflow_ids
        self.error_weight = error_weight
        #: Finished sessions older than this are forgotten, as a real API's retention would.
        self.retention = retention
        self.sessions: dict[str, SimSession] = {}
        self.truth = Truth()
        #: Sessions started so far (the benchmarks' measure of what is new).
        self.started = 0
        self._last_tick: float | None = None
        self._carry = 0.0
        #: Called with each session whose status changes (the demo's webhooks: ``demo/pushes.py``).
        self.on_status: Callable[[SimSession], None] | None = None

    def set_error_weight(self, weight: float) -> None:
        """Multiply the weight of every non-success outcome (the tests use it to trip alerts)."""
        self.error_weight = weight

    def tick(self) -> None:
        """Advance to now: finish sessions whose time has come, start new ones at ``rate`` per second."""
        now = self.clock()
        for session in list(self.sessions.values()):
            if session.running:
                if session.planned_end <= now:
                    self._finish(session, session.planned_end)
                else:
                    self._progress(session, now)
        if self.retention is not None:
            horizon = now - self.retention
            for session in [s for s in self.sessions.values() if s.ended_at is not None and s.ended_at < horizon]:
                del self.sessions[session.id]
        elapsed = 0.0 if self._last_tick is None else max(0.0, now - self._last_tick)
        self._last_tick = now
        self._carry += elapsed * self.rate
        while self._carry >= 1.0:
            self._carry -= 1.0
            self.start_session(now - self.random.uniform(0, min(1.0, elapsed)))

    def start_session(self, started_at: float | None = None, duration: float | None = None) -> SimSession:
        started_at = self.clock() if started_at is None else started_at
        duration = duration if duration is not None else self.random.uniform(self.min_duration, self.max_duration)
        active, _ = PROVIDER_STATUSES[self.provider]
        session = SimSession(
            id=str(uuid.UUID(int=self.random.getrandbits(128))),
            started_at=started_at,
            planned_end=started_at + duration,
            status=active[0],
            last_event_at=started_at,
            model=self.random.choice(MODELS),
            workflow_id=self.random.choice(self.workflow_ids),
        )
        self.sessions[session.id] = session
        self.started += 1
        return session

    def backfill(self, seconds: float) -> None:
        """Create the sessions of the last ``seconds`` at ``rate``, finishing those whose time has come."""
        now = self.clock()
        for _ in range(int(seconds * self.rate)):
            self.start_session(now - self.random.uniform(0, seconds))
        self._last_tick = None
        self.tick()

    def finish_all(self) -> None:
        """End every running session now (so a frozen simulator has a final truth)."""
        now = self.clock()
        for session in self.sessions.values():
            if session.running:
                self._finish(session, min(now, max(session.planned_end, session.started_at)))

    def _progress(self, session: SimSession, now: float) -> None:
        active, _ = PROVIDER_STATUSES[self.provider]
        session.last_event_at = now
        if len(active) > 1 and self.random.random() < 0.2:
            was, session.status = session.status, self.random.choice(active)
            session.handed_off |= session.status == "handoff"
            if self.on_status is not None and session.status != was:
                self.on_status(session)

    def _finish(self, session: SimSession, ended_at: float) -> None:
        _, terminal = PROVIDER_STATUSES[self.provider]
        weights = [w if outcome == "success" else w * self.error_weight for _, outcome, w in terminal]
        status, outcome, _ = self.random.choices(terminal, weights)[0]
        session.status, session.outcome = status, outcome
        session.ended_at = session.last_event_at = ended_at
        rnd = self.random
        if self.provider in ("whatabot", "dify"):
            session.warnings = rnd.choice((0, 0, 0, 1, 2))
        if self.provider == "dify" and status == "failed":
            session.warnings = 1  # Dify's exceptions_count counts the failing node too: no warning
        if self.provider == "dify":
            session.tokens = {"total": rnd.randint(50, 5000)}
        elif self.provider == "syntropic137":
            session.tokens = {
                "input": rnd.randint(100, 20000),
                "output": rnd.randint(50, 5000),
                "cache_read": rnd.randint(0, 50000),
                "cache_creation": rnd.randint(0, 5000),
            }
            session.cost = round(rnd.uniform(0.001, 0.03), 4)
        elif self.provider == "honeyhive":
            session.tokens = {"input": rnd.randint(100, 8000), "output": rnd.randint(20, 2000)}
            session.cost = round(rnd.uniform(0.0001, 0.02), 4)
        if outcome == "error" and self.provider in ("dify", "syntropic137", "honeyhive", "kapso"):
            session.error = "simulated failure"
            if self.provider == "syntropic137" and rnd.random() < 0.2:
                session.error, session.duration_known = ORPHANED, False
        if outcome == "cancelled" and self.provider == "dify":
            session.error = rnd.choice(DIFY_STOP_REASONS)
        t = self.truth
        t.finished[(status, outcome)] += 1
        t.warnings += 0 if self.provider == "dify" and status == "failed" else session.warnings
        t.errors += outcome in ("error", "timeout") or (bool(session.error) and outcome != "cancelled")
        t.tokens.update(session.tokens)
        if session.cost:
            t.cost[session.model] = t.cost.get(session.model, 0.0) + session.cost
        if session.duration_known:
            t.duration_sum += ended_at - session.started_at
            t.durations += 1
        if self.on_status is not None:
            self.on_status(session)
