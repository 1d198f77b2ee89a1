"""The simulated Dify API: ``GET /workflows/logs``, a one-based page, ``limit`` 1..100 and
``has_more``; newest ``created_at`` first, ``created_at__after``/``__before`` and ``status`` filters."""

from __future__ import annotations

from typing import Any, Callable

from aiohttp import web

from agent_session_exporter.demo.params import by_start, int_param, time_param
from agent_session_exporter.demo.sessions import SessionFactory, SimSession


class DifyApi:
    def __init__(self, factory: SessionFactory, clock: Callable[[], float], logs_at: str = "start") -> None:
        self.factory = factory
        self.clock = clock
        #: When Dify writes a run's log row, whose ``created_at`` is that moment: "start" (newer
        #: versions: running runs are listed) or "finish" (1.x: only ended runs are).
        self.logs_at = logs_at

    def routes(self, prefix: str) -> list[web.RouteDef]:
        return [web.get(prefix + "/workflows/logs", self.logs)]

    async def logs(self, request: web.Request) -> web.Response:
        page = int_param(request, "page", 1, 1, 99999)
        limit = int_param(request, "limit", 20, 1, 100)
        after, before = time_param(request, "created_at__after"), time_param(request, "created_at__before")
        rows: list[dict[str, Any]] = []
        for s in self._logged():
            logged = self._logged_at(s)
            if not (
                (after is None or logged >= after)
                and (before is None or logged <= before)
                and request.query.get("status") in (None, s.status)
            ):
                continue
            rows.append(self._row(s))
            if request.query.get("status") is None and int(s.id[:2], 16) < 16:
                # Dify allows a log row whose run is null (allow_null=True): one in sixteen here.
                rows.append({**self._row(s), "id": f"log-norun-{s.id}", "workflow_run": None})
        return web.json_response(
            {
                "page": page,
                "limit": limit,
                "total": len(rows),
                "has_more": len(rows) > page * limit,
                "data": rows[(page - 1) * limit : page * limit],
            }
        )

    def _logged(self) -> list[SimSession]:
        """The runs with a log row, newest row first."""
        if self.logs_at == "start":
            return by_start(self.factory)
        ended = [s for s in self.factory.sessions.values() if s.ended_at is not None]
        return sorted(ended, key=lambda s: (s.ended_at or 0.0, s.id), reverse=True)

    def _logged_at(self, s: SimSession) -> int:
        """The row's ``created_at``, in whole seconds as the API shows it."""
        return int(s.started_at if self.logs_at == "start" else s.ended_at or 0)

    def _row(self, s: SimSession) -> dict[str, Any]:
        return {
            "id": f"log-{s.id}",
            "workflow_run": {
                "id": s.id,
                "version": "2025-01-16 12:00:00.000000",
                "status": s.status,
                "error": s.error,
                "elapsed_time": round((s.ended_at or self.clock()) - s.started_at, 3),
                "total_tokens": s.tokens.get("total", 0),
                "total_steps": 3,
                "created_at": int(s.started_at),
                "finished_at": None if s.ended_at is None else int(s.ended_at),
                "exceptions_count": s.warnings,
                "triggered_from": "app",
            },
            "created_from": "service-api",
            "created_by_role": "end_user",
            "created_by_account": None,
            "created_by_end_user": {
                "id": "f1e2d3c4",
                "type": "service_api",
                "is_anonymous": False,
                "session_id": "user_workflow_123",
            },
            "created_at": self._logged_at(s),
        }
