"""Syntropic137's activity feed (``GET /sse/activity``), read: what one frame is, and the session it
names where it says a session ended.

Each frame's data is one JSON object ``{"type": "connected"|"event"|"terminal", "event_type",
"execution_id", "data", "timestamp"}`` (no ``id:`` line, no replay; a ``: keepalive`` comment every
30 s). ``SessionCompleted`` carries ``data.session_id`` (and a status, an end, token totals: never
believed; the lookup reads the session). Every other frame names nothing to look up. A frame's kind
is one of ``FRAME_KINDS`` (a label value: an upstream string never becomes one).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from agent_session_exporter.model import InvalidRecord
from agent_session_exporter.safetext import check_id

#: Syntropic137's event types on the activity channel, by the kind they are counted as.
EVENT_KINDS = {
    "SessionCompleted": "session_completed",
    "SessionStarted": "session_started",
    "WorkflowExecutionStarted": "workflow_started",
    "WorkflowCompleted": "workflow_completed",
    "WorkflowFailed": "workflow_failed",
}
#: What a frame is counted as: the handshake, a known event, a keepalive comment, or anything else.
FRAME_KINDS = ("connected", *EVENT_KINDS.values(), "keepalive", "other")


@dataclass(frozen=True, slots=True)
class Frame:
    kind: str
    #: The session a ``SessionCompleted`` names (to look up); None for every other frame.
    session_id: str | None = None


class Malformed(ValueError):
    """A frame whose data is not a JSON object (``kind`` other), or a ``SessionCompleted`` naming no
    usable session (``kind`` session_completed)."""

    def __init__(self, message: str, kind: str = "other") -> None:
        super().__init__(message)
        self.kind = kind


def read_frame(data: str) -> Frame:
    try:
        frame = json.loads(data)
    except (ValueError, RecursionError):
        raise Malformed("not JSON") from None
    if not isinstance(frame, dict):
        raise Malformed("not a JSON object")
    if frame.get("type") == "connected":
        return Frame("connected")
    event_type = frame.get("event_type")
    kind = (
        EVENT_KINDS.get(event_type, "other")
        if isinstance(event_type, str) and frame.get("type") in ("event", "terminal")
        else "other"
    )
    if kind != "session_completed":
        return Frame(kind)
    payload: Any = frame.get("data")
    session = payload.get("session_id") if isinstance(payload, dict) else None
    if isinstance(session, bool) or not isinstance(session, (str, int)):
        raise Malformed("a SessionCompleted without a session_id", kind)
    try:
        session_id = check_id(str(session))
    except InvalidRecord:
        raise Malformed("a SessionCompleted whose session_id is not a usable id", kind) from None
    if not session_id:
        raise Malformed("a SessionCompleted with an empty session_id", kind)
    return Frame(kind, session_id)
