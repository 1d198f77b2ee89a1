"""read/syntropic137_activity.py: what a frame of Syntropic137's activity feed is (a closed set of kinds)
and the session a SessionCompleted names; anything else of a frame is never read."""

from __future__ import annotations

import json

import pytest

from agent_session_exporter.read.syntropic137_activity import FRAME_KINDS, Frame, Malformed, read_frame

COMPLETED = {
    "type": "event",
    "event_type": "SessionCompleted",
    "execution_id": None,
    "timestamp": "2026-11-30T10:00:00+00:00",
    "data": {
        "session_id": "7c1e-42",
        "status": "failed",
        "completed_at": "2026-11-30T10:00:00+00:00",
        "total_input_tokens": 10,
        "total_output_tokens": 5,
        "total_tokens": 15,
        "operation_count": 2,
        "error_message": "boom",
    },
}


def frame(**changes: object) -> str:
    return json.dumps({**COMPLETED, **changes})


def test_a_session_completed_names_its_session():
    assert read_frame(frame()) == Frame("session_completed", "7c1e-42")
    assert read_frame(frame(type="terminal")) == Frame("session_completed", "7c1e-42")
    assert read_frame(frame(data={"session_id": 42})) == Frame("session_completed", "42")


@pytest.mark.parametrize(
    ("event_type", "kind"),
    [
        ("SessionStarted", "session_started"),
        ("WorkflowExecutionStarted", "workflow_started"),
        ("WorkflowCompleted", "workflow_completed"),
        ("WorkflowFailed", "workflow_failed"),
        ("OperationRecorded", "other"),
        ("a\nnew one", "other"),
        (["not", "a string"], "other"),
    ],
)
def test_other_events_name_nothing_and_their_kind_is_from_a_closed_set(event_type, kind):
    assert read_frame(frame(event_type=event_type)) == Frame(kind)
    assert kind in FRAME_KINDS


def test_the_handshake_and_unknown_frame_types():
    assert read_frame(json.dumps({"type": "connected", "event_type": "connected", "data": {"channel": "activity"}})) == Frame(
        "connected"
    )
    assert read_frame(frame(type="snapshot")) == Frame("other")


@pytest.mark.parametrize(
    "data",
    [
        "not json",
        '{"type": "event"',
        "[1, 2]",
        "null",
        "[" * 100_000,
        frame(data={}),
        frame(data={"session_id": None}),
        frame(data={"session_id": True}),
        frame(data={"session_id": ""}),
        frame(data={"session_id": "x" * 300}),
        frame(data="7c1e-42"),
        frame(data={"session_id": "\ud800"}),
    ],
)
def test_garbage_is_malformed(data):
    with pytest.raises(Malformed) as caught:
        read_frame(data)
    assert caught.value.kind == ("session_completed" if "SessionCompleted" in data else "other")
