"""The five providers' list pages for the ingest benchmark: each item prerendered as the API writes it
(after the demo simulators and the providers' documentation), each list paged as the API pages it,
and, for the bare client, the requests that read the same pages.

Session ``i`` starts at ``T0 + i * spacing``; sessions ``0..newest`` are visible (``newest`` follows
the horizon). Every list is newest first.
"""

from __future__ import annotations

import base64
import json
import math
from datetime import datetime, timezone
from typing import Any, Callable

T0 = 1_780_000_000
#: Each shape's page size (its API's largest) and the source options its provider reads it with.
PAGE = {"dify": 100, "whatabot": 100, "syntropic137": 200, "honeyhive": 1000, "kapso": 100}
WORKFLOW = "wf-bench"
STATUSES = (
    "completed",
    "completed",
    "completed",
    "completed",
    "error",
    "completed",
    "timeout",
    "completed",
    "completed",
    "error",
)


def _iso_ms(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _text(ts: float) -> str:
    return str(datetime.fromtimestamp(ts, timezone.utc))


def _dify(i: int, start: float) -> dict[str, Any]:
    status = (
        "succeeded",
        "succeeded",
        "succeeded",
        "succeeded",
        "partial-succeeded",
        "failed",
        "stopped",
        "succeeded",
        "succeeded",
        "failed",
    )[i % 10]
    created = int(start)
    return {
        "id": f"log-{i:08d}-5e43-4f90-be01-d5c5a088d156",
        "workflow_run": {
            "id": f"run-{i:08d}-5e43-4f90-be01-d5c5a088d156",
            "version": "2025-01-16 12:00:00.000000",
            "status": status,
            "error": "node failed" if status == "failed" else None,
            "elapsed_time": round(0.5 + (i % 97) / 7, 3),
            "total_tokens": 100 + (i * 37) % 5000,
            "total_steps": 1 + i % 9,
            "created_at": created,
            "finished_at": created + 1 + i % 60,
            "exceptions_count": 1 if status == "partial-succeeded" else 0,
            "triggered_from": "app",
        },
        "created_from": "service-api",
        "created_by_role": "end_user",
        "created_by_account": None,
        "created_by_end_user": {
            "id": f"f1e2d3c4-b5a6-7890-abcd-{i:012d}",
            "type": "service_api",
            "is_anonymous": False,
            "session_id": f"user_workflow_{i % 5000:06d}",
        },
        "created_at": created,
        "app": {"id": "a3b4c5d6-e7f8-4a1b-9c2d-3e4f5a6b7c8d", "name": "Customer support triage", "mode": "workflow"},
        "inputs": {"query": "Where is my order? It was supposed to arrive on Tuesday.", "channel": "web"},
    }


def _whatabot(i: int, start: float) -> dict[str, Any]:
    return {
        "id": f"a1b2c3d4-0000-4000-8000-{i:012d}",
        "workspaceId": "660e8400-e29b-41d4-a716-446655440000",
        "flowId": f"550e8400-e29b-41d4-a716-44665544{i % 7:04d}",
        "externalId": f"contact-{i % 997}",
        "status": STATUSES[i % 10],
        "warnings": i % 3,
        "startedAt": _iso_ms(start),
        "expiresAt": _iso_ms(start + 900),
        "finishedAt": _iso_ms(start + 5 + i % 120),
    }


def _syntropic(i: int, start: float) -> dict[str, Any]:
    status = ("completed", "completed", "failed", "completed", "cancelled")[i % 5]
    tokens = {"input": 1000 + i % 500, "output": 200 + i % 90, "cache_creation": i % 40, "cache_read": 3000 + i % 700}
    cost = 0.0123 + (i % 100) / 1000
    return {
        "id": f"sess-{i:08d}-7d1e-4c1f-9a3b",
        "workflow_id": f"wf-{i % 5}",
        "workflow_name": f"Workflow {i % 5}",
        "execution_id": f"ex-{i:08d}",
        "phase_id": "p1",
        "phase_display": "Phase 1",
        "status": status,
        "agent_provider": "anthropic",
        "agent_model": "claude-sonnet-4",
        "agent_model_display": "Claude Sonnet 4",
        "repos": [],
        "repos_display": "",
        "input_tokens": tokens["input"],
        "output_tokens": tokens["output"],
        "cache_creation_tokens": tokens["cache_creation"],
        "cache_read_tokens": tokens["cache_read"],
        "total_tokens": sum(tokens.values()),
        "total_tokens_display": str(sum(tokens.values())),
        "total_cost_usd": f"{cost:.4f}",
        "total_cost_display": f"${cost:.2f}",
        "duration_seconds": round(12.5 + i % 300, 3),
        "duration_display": "12s",
        "started_at": _text(start),
        "completed_at": _text(start + 12.5 + i % 300),
        "error_message": "tool call failed" if status == "failed" else None,
    }


def _honeyhive(i: int, start: float) -> dict[str, Any]:
    start_ms, end_ms = round(start * 1000), round(start * 1000) + 4_000 + (i % 50) * 100
    return {
        "children": [],
        "config": {},
        "duration": end_ms - start_ms,
        "end_time": end_ms,
        "error": "simulated failure" if i % 9 == 0 else None,
        "event_id": f"ev-{i:08d}-aaaa-bbbb",
        "event_name": "session",
        "event_type": "session",
        "feedback": {},
        "inputs": {"query": "hello there"},
        "metadata": {
            "prompt_tokens": 1000 + i % 300,
            "completion_tokens": 200 + i % 50,
            "total_tokens": 1200 + i % 350,
            "cost": 0.05,
            "model": "gpt-4o",
        },
        "metrics": {},
        "outputs": {},
        "project": "bench",
        "session_id": f"hh-{i:08d}-aaaa-bbbb",
        "source": "prod",
        "start_time": start_ms,
        "user_properties": {},
    }


def _kapso(i: int, start: float) -> dict[str, Any]:
    status = ("ended", "ended", "ended", "failed", "ended")[i % 5]
    item: dict[str, Any] = {
        "id": f"3c90c3cc-0d44-4b50-8888-{i:012d}",
        "started_at": _iso_ms(start),
        "last_event_at": _iso_ms(start + 30),
        "ended_at": _iso_ms(start + 30 + i % 60),
        "tracking_id": f"t-{i}",
        "whatsapp_conversation_id": f"w-{i}",
        "status": status,
        "workflow": {"id": WORKFLOW, "name": "Bench workflow", "status": "active"},
        "current_step": {"id": f"c-{i}", "identifier": "step", "stepable_type": "AgentStep", "position": {"x": 123, "y": 123}},
    }
    if status == "failed":
        item["error_details"] = {"message": "step failed"}
    return item


ITEMS: dict[str, Callable[[int, float], dict[str, Any]]] = {
    "dify": _dify,
    "whatabot": _whatabot,
    "syntropic137": _syntropic,
    "honeyhive": _honeyhive,
    "kapso": _kapso,
}


def render(shape: str, i: int, spacing: float) -> bytes:
    return json.dumps(ITEMS[shape](i, T0 + i * spacing), separators=(",", ":")).encode()


def source(shape: str, base_url: str, lookback: float) -> dict[str, Any]:
    """The exporter's source for ``shape`` against the page server at ``base_url``."""
    prefix = {"dify": "/v1", "whatabot": "", "syntropic137": "", "honeyhive": "", "kapso": ""}[shape]
    entry: dict[str, Any] = {
        "name": "bench",
        "provider": shape,
        "base_url": base_url + prefix,
        "initial_lookback": lookback,
        "overlap": 60,
        "max_pages": 100_000,
        "max_requests_per_cycle": 100_000,
        "page_size": PAGE[shape],
    }
    if shape != "syntropic137":
        entry["api_key"] = "bench-key"
    if shape == "honeyhive":
        entry.update(settle_after=0)  # counted when first seen ended: the shape, not the settle protocol
    if shape == "kapso":
        entry.update(workflow_ids=[WORKFLOW])
    return entry


class Lists:
    """What the page server answers: each shape's list, newest first, paged as its API pages it."""

    def __init__(self, shape: str, sessions: int, spacing: float, prerender: bool) -> None:
        self.shape = shape
        self.sessions = sessions
        self.spacing = spacing
        self.items = [render(shape, i, spacing) for i in range(sessions)] if prerender else None
        self.horizon = T0 + (sessions - 1) * spacing

    def item(self, i: int) -> bytes:
        return self.items[i] if self.items is not None else render(self.shape, i, self.spacing)

    @property
    def newest(self) -> int:
        return min(self.sessions - 1, math.floor((self.horizon - T0) / self.spacing))

    def index_at(self, ts: float, up: bool) -> int:
        """The first session at or after ``ts`` (``up``), or the last at or before it."""
        x = (ts - T0) / self.spacing
        return math.ceil(x - 1e-9) if up else math.floor(x + 1e-9)

    def slice(self, first: int, oldest: int, count: int) -> list[bytes]:
        """Up to ``count`` items from ``first`` down to ``oldest``, newest first."""
        last = max(oldest, first - count + 1)
        return [self.item(i) for i in range(first, last - 1, -1)] if first >= oldest else []

    def answer(self, path: str, query: dict[str, str], body: dict[str, Any] | None) -> bytes:
        from agent_session_exporter.timeparse import parse_timestamp

        newest, shape = self.newest, self.shape
        if shape == "dify":
            page, limit = int(query.get("page", 1)), int(query.get("limit", 20))
            after = parse_timestamp(query.get("created_at__after"))
            oldest = 0 if after is None else max(0, self.index_at(after, True))
            total = max(0, newest - oldest + 1)
            data = self.slice(newest - (page - 1) * limit, oldest, limit)
            return b'{"page":%d,"limit":%d,"total":%d,"has_more":%s,"data":[%s]}' % (
                page,
                limit,
                total,
                b"true" if total > page * limit else b"false",
                b",".join(data),
            )
        if shape == "whatabot":
            page, size = int(query.get("page", 0)), int(query.get("size", 20))
            total = newest + 1
            data = self.slice(newest - page * size, 0, size)
            pages = (total + size - 1) // size
            return b'{"content":[%s],"totalElements":%d,"totalPages":%d,"size":%d,"number":%d,"last":%s}' % (
                b",".join(data),
                total,
                pages,
                size,
                page,
                b"true" if page >= pages - 1 else b"false",
            )
        if shape == "syntropic137":
            limit = int(query.get("limit", 50))
            after, before = parse_timestamp(query.get("started_after")), parse_timestamp(query.get("started_before"))
            oldest = 0 if after is None else max(0, self.index_at(after, True))
            first = newest if before is None else min(newest, self.index_at(before, False))
            data = self.slice(first, oldest, limit)
            return b'{"sessions":[%s],"total":%d}' % (b",".join(data), len(data))
        if shape == "honeyhive":
            assert body is not None
            limit, page = body.get("limit", 1000), body.get("page", 1)
            after = parse_timestamp(body.get("dateRange", {}).get("start_time"))
            oldest = 0 if after is None else max(0, self.index_at(after, True))
            data = self.slice(newest - (page - 1) * limit, oldest, limit)
            return b'{"events":[%s],"count":%d}' % (b",".join(data), max(0, newest - oldest + 1))
        limit = int(query.get("limit", 20))  # kapso: a cursor is the index to go on from
        after = parse_timestamp(query.get("created_after"))
        oldest = 0 if after is None else max(0, self.index_at(after, True))
        first = int(base64.b64decode(query["after"])) if query.get("after") else newest
        data = self.slice(first, oldest, limit)
        more = first - len(data) >= oldest and data
        cursor = base64.b64encode(str(first - len(data)).encode()) if more else b""
        paging = (
            b'{"cursors":{"after":"%s"},"next":"%s?after=%s"}' % (cursor, path.encode(), cursor)
            if more
            else b'{"cursors":{"after":null},"next":null}'
        )
        return b'{"data":[%s],"paging":%s}' % (b",".join(data), paging)

    def route(self) -> tuple[str, str]:
        """The method and path of the shape's list."""
        return {
            "dify": ("GET", "/v1/workflows/logs"),
            "whatabot": ("GET", "/sessions/logs"),
            "syntropic137": ("GET", "/sessions"),
            "honeyhive": ("POST", "/v1/events/search"),
            "kapso": ("GET", f"/workflows/{WORKFLOW}/executions"),
        }[self.shape]


def bare_requests(shape: str, sessions: int, spacing: float) -> list[tuple[str, dict[str, str], dict[str, Any] | None]]:
    """The requests that read every session once, page by page, as the bare client sends them:
    (path, query, JSON body)."""
    size, newest = PAGE[shape], sessions - 1
    pages = math.ceil(sessions / size)
    requests: list[tuple[str, dict[str, str], dict[str, Any] | None]] = []
    for page in range(pages):
        first = newest - page * size
        if shape == "dify":
            requests.append(("/v1/workflows/logs", {"page": str(page + 1), "limit": str(size)}, None))
        elif shape == "whatabot":
            requests.append(
                ("/sessions/logs", {"page": str(page), "size": str(size), "orderBy": "startedAt", "direction": "DESC"}, None)
            )
        elif shape == "syntropic137":
            before = _text(T0 + first * spacing)
            requests.append(("/sessions", {"limit": str(size), "started_before": before}, None))
        elif shape == "honeyhive":
            requests.append(("/v1/events/search", {}, {"filters": [], "limit": size, "page": page + 1}))
        else:
            query = {"limit": str(size)}
            if page:
                query["after"] = base64.b64encode(str(first).encode()).decode()
            requests.append((f"/workflows/{WORKFLOW}/executions", query, None))
    return requests


def items_of(shape: str, body: Any) -> list[Any]:
    return body[
        {"dify": "data", "whatabot": "content", "syntropic137": "sessions", "honeyhive": "events", "kapso": "data"}[shape]
    ]
