"""The simulated Whatabot API: ``GET /sessions/logs``, a zero-based page of size 1..100 in a Spring
page object; ``orderBy``/``direction``, ``dateRange``, ``sessionId`` and ``status`` filters."""

from __future__ import annotations

from typing import Callable

from aiohttp import web

from agent_session_exporter.demo.params import bad, by_start, int_param, iso
from agent_session_exporter.demo.sessions import SessionFactory

_DATE_RANGES = {"today": 1, "last7days": 7, "last15days": 15, "last30days": 30}


class WhatabotApi:
    def __init__(self, factory: SessionFactory, clock: Callable[[], float], ignores_order: bool = False) -> None:
        self.factory = factory
        self.clock = clock
        #: A Whatabot that ignores ``orderBy``/``direction`` and lists oldest first.
        self.ignores_order = ignores_order

    def routes(self, prefix: str) -> list[web.RouteDef]:
        return [web.get(prefix + "/sessions/logs", self.sessions)]

    async def sessions(self, request: web.Request) -> web.Response:
        page = int_param(request, "page", 0, 0, 10**6)
        size = int_param(request, "size", 20, 1, 100)
        q = request.query
        if q.get("direction", "ASC") not in ("ASC", "DESC"):
            return bad("direction must be ASC or DESC")
        if q.get("dateRange") not in (None, *_DATE_RANGES):
            return bad("unknown dateRange")
        newest_first = q.get("direction", "ASC") == "DESC" and not self.ignores_order
        sessions = by_start(self.factory, newest_first=newest_first)
        if "dateRange" in q:
            days = _DATE_RANGES[q["dateRange"]]
            sessions = [s for s in sessions if s.started_at >= self.clock() - days * 86400]
        if "sessionId" in q:
            sessions = [s for s in sessions if s.id == q["sessionId"]]
        if "status" in q:
            sessions = [s for s in sessions if s.status == q["status"]]
        total = len(sessions)
        chunk = sessions[page * size : (page + 1) * size]
        pages = (total + size - 1) // size
        return web.json_response(
            {
                "content": [
                    {
                        "id": s.id,
                        "workspaceId": "660e8400-e29b-41d4-a716-446655440000",
                        "flowId": "550e8400-e29b-41d4-a716-446655440000",
                        "externalId": f"contact-{s.id[:4]}",
                        "status": s.status,
                        "warnings": s.warnings,
                        "startedAt": iso(s.started_at),
                        "expiresAt": iso(s.started_at + 900),
                        "finishedAt": iso(s.ended_at),
                    }
                    for s in chunk
                ],
                "totalElements": total,
                "totalPages": pages,
                "size": size,
                "number": page,
                "first": page == 0,
                "last": page >= pages - 1,
                "empty": not chunk,
            }
        )
