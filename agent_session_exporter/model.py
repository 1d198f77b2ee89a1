"""Normalized session records: what every provider turns its API items into."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class Outcome(str, enum.Enum):
    SUCCESS = "success"
    ERROR = "error"
    TIMEOUT = "timeout"
    CANCELLED = "cancelled"
    UNKNOWN = "unknown"


class Phase(str, enum.Enum):
    ACTIVE = "active"
    FINISHED = "finished"
    #: No status upstream (HoneyHive): finished once ``finished_at`` stops moving.
    SETTLING = "settling"


@dataclass(slots=True)
class SessionRecord:
    """One session as the exporter understands it, whatever the provider.

    ``key_time`` is the timestamp the provider's list is ordered and filtered by
    (usually the start); it decides which polling window the session belongs to.
    """

    session_id: str
    status: str
    phase: Phase
    key_time: float
    outcome: Outcome | None = None
    known_status: bool = True
    started_at: float | None = None
    finished_at: float | None = None
    duration_seconds: float | None = None
    warnings: float = 0.0
    error_text: bool = False
    tokens: dict[str, float] = field(default_factory=dict)
    cost_usd: float | None = None
    model: str | None = None
    #: The workflow's stable id where the provider has one ("" where it has no such notion), and its
    #: display name where the provider gives one.
    workflow: str = ""
    workflow_name: str | None = None
    #: A short, secret-free excerpt of the error text, for the landing page's recent failures.
    error_message: str | None = None
    #: Keys of optional figures whose values were unusable and left out (the session still counts).
    dropped_figures: tuple[str, ...] = ()

    @property
    def counts_as_error(self) -> bool:
        """The one definition of an error (README, rules and dashboard use it): outcome error or
        timeout, or any other ending but ``cancelled`` that carries an error text (a cancelled
        session's text is its stop reason, as Dify writes it)."""
        if self.outcome in (Outcome.ERROR, Outcome.TIMEOUT):
            return True
        return self.error_text and self.outcome is not Outcome.CANCELLED


class InvalidRecord(ValueError):
    """An API item that cannot become a record; ``reason`` is a short metric label."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


def classify(status: str, mapping: dict[str, Outcome | None], finished_at: float | None) -> tuple[Phase, Outcome | None, bool]:
    """Map a raw status to (phase, outcome, known) with the table of one provider.

    ``None`` in the mapping means an active status. An unknown status stays active
    while there is no finish time and finishes as ``unknown`` once there is one.
    """
    if status in mapping:
        outcome = mapping[status]
        return (Phase.ACTIVE, None, True) if outcome is None else (Phase.FINISHED, outcome, True)
    if finished_at is None:
        return Phase.ACTIVE, None, False
    return Phase.FINISHED, Outcome.UNKNOWN, False
