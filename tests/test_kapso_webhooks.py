"""read/kapso_webhooks.py: the executions a Kapso webhook delivery names, in each shape Kapso's docs
show (flat, ``{event, data}``, a batch in its envelope or bare); nothing else of a push is read."""

from __future__ import annotations

import json

import pytest

from agent_session_exporter.read.kapso_webhooks import Malformed, read_delivery

FAILED = {
    "event": "workflow.execution.failed",
    "occurred_at": "2026-11-30T10:00:00Z",
    "project_id": "p-1",
    "workflow_id": "wf-a",
    "workflow_execution_id": "exec-1",
    "status": "failed",
    "tracking_id": "t-1",
    "whatsapp_conversation_id": "c-1",
    "error": {"message": "Workflow execution timed out"},
}
HANDOFF = {
    **FAILED,
    "event": "workflow.execution.handoff",
    "workflow_execution_id": "exec-2",
    "status": "handoff",
    "handoff": {"reason": "asked for a person", "source": "handoff_node"},
}


def read(payload: object, header: str | None = None) -> tuple[list[tuple[str, str | None]], int]:
    events, bad = read_delivery(json.dumps(payload).encode(), header)
    return [(e.session_id, e.workflow) for e in events], bad


def test_a_flat_event_names_its_execution_and_workflow():
    assert read(FAILED) == ([("exec-1", "wf-a")], 0)


def test_the_event_data_envelope_is_read_too():
    assert read({"event": "workflow.execution.failed", "data": {k: v for k, v in FAILED.items() if k != "event"}}) == (
        [("exec-1", "wf-a")],
        0,
    )


@pytest.mark.parametrize(
    "batch", [[FAILED, HANDOFF], {"type": "workflow.execution.failed", "batch": True, "data": [FAILED, HANDOFF]}]
)
def test_a_batch_names_each_execution(batch):
    assert read(batch, "workflow.execution.failed") == ([("exec-1", "wf-a"), ("exec-2", "wf-a")], 0)


def test_items_naming_no_usable_execution_are_counted_not_read():
    payload = [
        FAILED,
        {"event": "whatsapp.message.received"},
        7,
        {"workflow_execution_id": True},
        {"workflow_execution_id": ""},
        {"workflow_execution_id": "x" * 300},
        {"workflow_execution_id": 42},
    ]
    assert read(payload) == ([("exec-1", "wf-a"), ("42", None)], 5)


def test_the_same_execution_pushed_for_two_events_has_two_keys_and_a_retry_one():
    events, _ = read_delivery(json.dumps([FAILED, {**FAILED, "event": "workflow.execution.handoff"}, FAILED]).encode())
    assert events[0].key != events[1].key and events[0].key == events[2].key


def test_a_workflow_object_names_the_workflow_where_workflow_id_is_missing():
    item = {k: v for k, v in FAILED.items() if k != "workflow_id"} | {"workflow": {"id": "wf-b", "name": "n"}}
    assert read(item) == ([("exec-1", "wf-b")], 0)


@pytest.mark.parametrize("body", [b"", b"not json", b"{" * 100_000, b"\xff\xfe"])
def test_a_body_that_is_not_json_is_malformed(body):
    with pytest.raises(Malformed):
        read_delivery(body)
