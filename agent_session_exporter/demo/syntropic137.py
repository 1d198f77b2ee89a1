"""The simulated Syntropic137 API: ``GET /sessions`` (``limit`` 1..200, inclusive
``started_after``/``started_before``, ``status``/``statuses`` and ``workflow_id`` filters, newest
first) and ``GET /sessions/{id}`` (by id prefix). No auth of its own."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from aiohttp import web

from agent_session_exporter.demo.params import by_start, int_param, time_param
from agent_session_exporter.demo.sessions import SessionFactory, SimSession


def _text(ts: float | None) -> str | None:
    """str(datetime), as the API produces it."""
    return None if ts is None else str(datetime.fromtimestamp(ts, timezone.utc))


class Syntropic137Api:
    def __init__(self, factory: SessionFactory) -> None:
        self.factory = factory

    def routes(self, prefix: str) -> list[web.RouteDef]:
        return [web.get(prefix + "/sessions", self.sessions), web.get(prefix + "/sessions/{id}", self.detail)]

    def _item(self, s: SimSession) -> dict[str, Any]:
        tokens = s.tokens
        return {
            "id": s.id,
            "workflow_id": s.workflow_id,
            "workflow_name": "demo",
            "execution_id": f"ex-{s.id[:8]}",
            "phase_id": "p1",
            "phase_display": "Phase 1",
            "status": s.status,
            "agent_provider": "anthropic",
            "agent_model": s.model,
            "agent_model_display": s.model,
            "repos": [],
            "repos_display": "",
            "input_tokens": tokens.get("input", 0),
            "output_tokens": tokens.get("output", 0),
            "cache_creation_tokens": tokens.get("cache_creation", 0),
            "cache_read_tokens": tokens.get("cache_read", 0),
            "total_tokens": sum(tokens.values()),
            "total_tokens_display": str(sum(tokens.values())),
            "total_cost_usd": f"{s.cost:.4f}",
            "total_cost_display": f"${s.cost:.2f}",
            "duration_seconds": (None if s.ended_at is None or not s.duration_known else round(s.ended_at - s.started_at, 3)),
            "duration_display": "—",
            "started_at": _text(s.started_at),
            "completed_at": _text(s.ended_at),
        }

    async def sessions(self, request: web.Request) -> web.Response:
        limit = int_param(request, "limit", 50, 1, 200)
        after, before = time_param(request, "started_after"), time_param(request, "started_before")
        q = request.query
        statuses = q["statuses"].split(",") if q.get("statuses") else ([q["status"]] if q.get("status") else None)
        sessions = [
            s
            for s in by_start(self.factory)
            if (after is None or s.started_at >= after)
            and (before is None or s.started_at <= before)
            and (statuses is None or s.status in statuses)
            and q.get("workflow_id") in (None, s.workflow_id)
        ][:limit]
        return web.json_response({"sessions": [self._item(s) for s in sessions], "total": len(sessions)})

    async def detail(self, request: web.Request) -> web.Response:
        prefix = request.match_info["id"]
        for s in self.factory.sessions.values():
            if s.id.startswith(prefix):
                item = self._item(s)
                item.update(
                    {
                        "error_message": s.error,
                        "metadata": {},
                        "operations": [],
                        "cost_by_model": {s.model: item["total_cost_usd"]},
                    }
                )
                return web.json_response(item)
        return web.json_response({"detail": [{"loc": ["path", "id"], "msg": "not found", "type": "not_found"}]}, status=404)
