"""The n8n simulator's HTTP side: n8n 1.123's public API (executions, one execution, workflows) over one
``N8nFactory``, with its request validator's 400s, its cursors and its API-key check."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any, Awaitable, Callable

from aiohttp import web

from agent_session_exporter.demo.n8n import N8N_WORKFLOWS, N8nFactory, workflow_item

N8N_KEY = "demo-n8n-key"
N8N_PREFIX = "/n8n/api/v1"
STATUS_FILTERS = ("canceled", "error", "running", "success", "waiting")
EXECUTION_PARAMS = frozenset({"includeData", "status", "workflowId", "projectId", "limit", "cursor"})
WORKFLOW_PARAMS = frozenset({"active", "tags", "name", "projectId", "excludePinnedData", "limit", "cursor"})


def message(text: str, status: int) -> web.Response:
    return web.json_response({"message": text}, status=status)


def encode_cursor(value: dict[str, Any]) -> str:
    return base64.b64encode(json.dumps(value, separators=(",", ":")).encode()).decode()


def decode_cursor(raw: str) -> dict[str, Any] | None:
    try:
        value = json.loads(base64.b64decode(raw, validate=True))
    except (ValueError, binascii.Error):
        return None
    return value if isinstance(value, dict) else None


class N8nSimulator:
    """The public API over one ``N8nFactory``: executions (list, one) and workflows, keyed by
    ``X-N8N-API-KEY``. ``requests`` counts the requests answered."""

    def __init__(self, factory: N8nFactory, key: str = N8N_KEY) -> None:
        self.factory = factory
        self.key = key
        self.requests = 0

    def routes(self, prefix: str = N8N_PREFIX) -> list[web.RouteDef]:
        """Its handlers under ``prefix`` (``demo/server.py`` serves them beside the other APIs)."""
        return [
            web.get(prefix + "/executions", self._guard(self.executions)),
            web.get(prefix + "/executions/{id}", self._guard(self.execution)),
            web.get(prefix + "/workflows", self._guard(self.workflows)),
        ]

    def app(self, prefix: str = N8N_PREFIX) -> web.Application:
        app = web.Application()
        app.add_routes(self.routes(prefix))
        return app

    def _guard(self, handler: Callable[[web.Request], Awaitable[web.Response]]) -> Callable[[web.Request], Any]:
        async def guarded(request: web.Request) -> web.StreamResponse:
            self.requests += 1
            if "X-N8N-API-KEY" not in request.headers:
                return message("'X-N8N-API-KEY' header required", 401)
            if request.headers["X-N8N-API-KEY"] != self.key:
                return message("unauthorized", 401)
            return await handler(request)

        return guarded

    @staticmethod
    def _query(request: web.Request, allowed: frozenset[str]) -> tuple[int, dict[str, Any] | None] | web.Response:
        """The page size (0: all) and the decoded cursor, or the 400 n8n's request validator answers."""
        unknown = sorted(set(request.query) - allowed)
        if unknown:
            return message(f"Unknown query parameter '{unknown[0]}'", 400)
        raw = request.query.get("limit", "100")
        if not raw.isdigit():
            return message("request/query/limit must be number", 400)
        if int(raw) > 250:
            return message("request/query/limit must be <= 250", 400)
        cursor = decode_cursor(request.query["cursor"]) if "cursor" in request.query else None
        if "cursor" in request.query and (cursor is None or not str(cursor.get("limit", "")).isdigit()):
            return message("An invalid cursor was provided", 400)
        return (int(cursor["limit"]) if cursor else int(raw)), cursor  # a cursor's own limit wins

    async def executions(self, request: web.Request) -> web.Response:
        parsed = self._query(request, EXECUTION_PARAMS)
        if isinstance(parsed, web.Response):
            return parsed
        limit, cursor = parsed
        status = request.query.get("status")
        if status is not None and status not in STATUS_FILTERS:
            return message("request/query/status must be equal to one of the allowed values: " + ", ".join(STATUS_FILTERS), 400)
        if cursor is not None and not str(cursor.get("lastId", "")).isdigit():
            return message("An invalid cursor was provided", 400)
        wanted = {"error": ("error", "crashed")}.get(status or "", (status,))
        rows = sorted(
            (
                s
                for s in self.factory.sessions.values()
                if (status is None or s.status in wanted)
                and (status == "running" or not self.factory.hidden(s))
                and request.query.get("workflowId", s.workflow_id) == s.workflow_id
                and (cursor is None or int(s.id) < int(cursor["lastId"]))
            ),
            key=lambda s: int(s.id),
            reverse=True,
        )
        page = rows[:limit] if limit else rows
        more = len(rows) > len(page)
        include = request.query.get("includeData") == "true"
        return web.json_response(
            {
                "data": [self.factory.item(s, include_data=include) for s in page],
                "nextCursor": encode_cursor({"lastId": page[-1].id, "limit": limit}) if more else None,
            }
        )

    async def execution(self, request: web.Request) -> web.Response:
        session = self.factory.sessions.get(request.match_info["id"])
        if session is None:
            return message("Not Found", 404)
        return web.json_response(self.factory.item(session, detail=True, include_data=request.query.get("includeData") == "true"))

    async def workflows(self, request: web.Request) -> web.Response:
        parsed = self._query(request, WORKFLOW_PARAMS)
        if isinstance(parsed, web.Response):
            return parsed
        limit, cursor = parsed
        offset = int(cursor.get("offset", 0)) if cursor else 0
        ids = sorted(
            w
            for w in N8N_WORKFLOWS
            if request.query.get("name", N8N_WORKFLOWS[w]) == N8N_WORKFLOWS[w] and request.query.get("active", "true") == "true"
        )
        page = ids[offset : offset + limit] if limit else ids[offset:]
        more = offset + len(page) < len(ids)
        return web.json_response(
            {
                "data": [workflow_item(w) for w in page],
                "nextCursor": encode_cursor({"limit": limit, "offset": offset + limit}) if more else None,
            }
        )
