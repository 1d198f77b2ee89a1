"""The simulated Kapso API: ``GET /workflows/{id}/executions`` (cursor pages of ``limit`` 1..100,
inclusive ``created_after``/``created_before``, a ``status`` filter), ``GET /workflow_executions/{id}``
and ``GET /workflows``; every answer with the per-minute rate limit headers."""

from __future__ import annotations

import base64
from typing import Any, Callable, Mapping

from aiohttp import web

from agent_session_exporter.demo.params import bad, by_start, int_param, iso, time_param
from agent_session_exporter.demo.sessions import SessionFactory, SimSession

STATUSES = ("running", "waiting", "handoff", "ended", "failed")


class KapsoApi:
    def __init__(
        self, factory: SessionFactory, clock: Callable[[], float], workflows: Mapping[str, str], status_field: bool = True
    ) -> None:
        self.factory = factory
        self.clock = clock
        #: Workflow id -> name.
        self.workflows = workflows
        #: As the API reference says, list items carry ``status``; False simulates the docs' example.
        self.status_field = status_field
        self.minute = [0, 0]  # [minute, requests in it]

    def routes(self, prefix: str) -> list[web.RouteDef]:
        return [
            web.get(prefix + "/workflows/{workflow_id}/executions", self.executions),
            web.get(prefix + "/workflow_executions/{id}", self.detail),
            web.get(prefix + "/workflows", self.list_workflows),
        ]

    async def executions(self, request: web.Request) -> web.Response:
        workflow_id = request.match_info["workflow_id"]
        if workflow_id not in self.workflows:
            return bad("workflow not found", 404)
        limit = int_param(request, "limit", 20, 1, 100)
        after, before = time_param(request, "created_after"), time_param(request, "created_before")
        status = request.query.get("status")
        if status not in (None, *STATUSES):
            return bad("unknown status", 422)
        sessions = [
            s
            for s in by_start(self.factory)
            if s.workflow_id == workflow_id
            and (after is None or s.started_at >= after)
            and (before is None or s.started_at <= before)
            and status in (None, s.status)
        ]
        if request.query.get("after"):
            try:
                position = base64.b64decode(request.query["after"]).decode().split("|")
                key = (float(position[0]), position[1])
            except (ValueError, IndexError):
                return bad("invalid cursor")
            sessions = [s for s in sessions if (s.started_at, s.id) < key]
        chunk = sessions[:limit]
        more = len(sessions) > limit

        def cursor(s: SimSession) -> str:
            return base64.b64encode(f"{s.started_at!r}|{s.id}".encode()).decode()

        paging: dict[str, Any] = {
            "cursors": {"before": cursor(chunk[0]) if chunk else None, "after": cursor(chunk[-1]) if chunk else None},
            "next": f"{request.path}?after={cursor(chunk[-1])}" if more else None,
            "previous": None,
        }
        data = [self._item(s) for s in chunk]
        return web.json_response({"data": data, "paging": paging}, headers=self._rate_limit())

    async def list_workflows(self, request: web.Request) -> web.Response:
        """``GET /workflows``: the workflows, two to a page behind ``paging.cursors.after``."""
        limit = min(int_param(request, "limit", 20, 1, 100), 2)
        start = int(request.query.get("after") or 0)
        ids = list(self.workflows)
        chunk = ids[start : start + limit]
        more = start + limit < len(ids)
        paging = {
            "cursors": {"before": str(start), "after": str(start + limit)},
            "next": f"{request.path}?after={start + limit}" if more else None,
            "previous": None,
        }
        data = [{"id": w, "name": self.workflows[w], "status": "active"} for w in chunk]
        return web.json_response({"data": data, "paging": paging}, headers=self._rate_limit())

    async def detail(self, request: web.Request) -> web.Response:
        session = self.factory.sessions.get(request.match_info["id"])
        if session is None:
            return bad("execution not found", 404)
        return web.json_response({"data": self._item(session)}, headers=self._rate_limit())

    def _item(self, s: SimSession) -> dict[str, Any]:
        item: dict[str, Any] = {
            "id": s.id,
            "started_at": iso(s.started_at),
            "last_event_at": iso(s.last_event_at),
            "ended_at": iso(s.ended_at),
            "tracking_id": s.id,
            "whatsapp_conversation_id": s.id,
            "workflow": {"id": s.workflow_id, "name": self.workflows[s.workflow_id], "status": "active"},
            "current_step": {"id": s.id, "identifier": "step", "stepable_type": "AgentStep", "position": {"x": 1, "y": 1}},
        }
        if self.status_field:
            item["status"] = s.status
        if s.status == "failed":
            item["error_details"] = {"message": s.error}
        return item

    def _rate_limit(self) -> dict[str, str]:
        """Kapso counts requests per API key per fixed minute and reports what is left."""
        minute = int(self.clock() // 60)
        if self.minute[0] != minute:
            self.minute = [minute, 0]
        self.minute[1] += 1
        return {"X-RateLimit-Limit": "1000", "X-RateLimit-Remaining": str(max(0, 1000 - self.minute[1]))}
