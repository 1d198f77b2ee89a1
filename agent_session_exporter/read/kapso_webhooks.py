"""Kapso's project webhooks, read: which workflow executions a delivery names.

Kapso pushes ``workflow.execution.failed`` and ``workflow.execution.handoff`` (nothing for start or
success) as flat JSON: ``event``, ``occurred_at``, ``project_id``, ``workflow_id``,
``workflow_execution_id``, ``status``, ``tracking_id``, ``whatsapp_conversation_id``, ``error`` or
``handoff``; some of its docs show ``{event, data: {...}}``, and a batch (header ``X-Webhook-Batch:
true``) is ``{type, batch: true, data: [...]}`` or a bare array. All are taken. Only the execution's
id and workflow are read: the rest of a push is never believed (the lookup reads the execution).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from agent_session_exporter.model import InvalidRecord
from agent_session_exporter.safetext import check_id


@dataclass(frozen=True, slots=True)
class PushedEvent:
    """One event of a delivery: the execution it names, and what tells it apart from another push
    about the same execution (its ``key``)."""

    session_id: str
    workflow: str | None
    key: tuple[str, ...]


class Malformed(ValueError):
    """A body that is not JSON, or not one of the shapes above."""


def read_delivery(body: bytes, event_header: str | None = None) -> tuple[list[PushedEvent], int]:
    """The events of one delivery, and how many of its items name no usable execution."""
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):
        raise Malformed("not JSON") from None
    default = event_header or ""
    if isinstance(payload, dict) and isinstance(payload.get("data"), list):  # a batch in its envelope
        default = _text(payload.get("event")) or _text(payload.get("type")) or default
        payload = payload["data"]
    items = payload if isinstance(payload, list) else [payload]
    events, bad = [], 0
    for item in items:
        event = _event(item, default)
        if event is None:
            bad += 1
        else:
            events.append(event)
    return events, bad


def _event(item: Any, default: str) -> PushedEvent | None:
    if not isinstance(item, dict):
        return None
    name = _text(item.get("event")) or _text(item.get("type")) or default
    if "workflow_execution_id" not in item and isinstance(item.get("data"), dict):
        item = item["data"]  # {event, data: {...}}
    execution = item.get("workflow_execution_id")
    if isinstance(execution, bool) or not isinstance(execution, (str, int)):
        return None
    try:
        session_id = check_id(str(execution))
    except InvalidRecord:
        return None
    if not session_id:
        return None
    workflow = _text(item.get("workflow_id")) or (
        _text(item["workflow"].get("id")) if isinstance(item.get("workflow"), dict) else None
    )
    key = (name, session_id, _text(item.get("occurred_at")) or "", _text(item.get("status")) or "")
    return PushedEvent(session_id, workflow, key)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
