"""The five provider APIs, simulated on one aiohttp app, each under its own prefix and shaped
exactly like its documentation in shared/seeds (pagination, filters, auth, field names)."""

from __future__ import annotations

import base64
import inspect
import json
import time
from collections import Counter
from datetime import datetime, timezone
from typing import Any, Callable

from aiohttp import web

from agent_session_exporter.demo.sessions import SessionFactory, SimSession
from agent_session_exporter.timeparse import parse_timestamp

DEMO_KEYS = {p: f"demo-{p}-key" for p in ("whatabot", "dify", "syntropic137", "honeyhive", "kapso")}
PREFIXES = {
    "whatabot": "/whatabot/api/v1", "dify": "/dify/v1", "syntropic137": "/syntropic137",
    "honeyhive": "/honeyhive", "kapso": "/kapso/platform/v1",
}
HONEYHIVE_PROJECT = "demo-project"
KAPSO_STATUSES = ("running", "waiting", "handoff", "ended", "failed")
KAPSO_WORKFLOWS = ("8f14e45f-ceea-467f-a0e6-0a1b2c3d4e5f", "c9f0f895-fb98-4b91-9e6a-112233445566")
KAPSO_WORKFLOW_NAMES = dict(zip(KAPSO_WORKFLOWS, ("Support intake", "Order status"), strict=True))
#: The simulators' own pages of one session (the demo's ``session_url``): provider -> path under /ui.
UI_PATHS = {p: f"/ui/{p}/sessions/{{session_id}}" for p in ("whatabot", "dify", "syntropic137", "honeyhive")} | {
    "kapso": "/ui/kapso/workflows/{workflow}/executions/{session_id}"}


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _bad(message: str, status: int = 400) -> web.Response:
    return web.json_response({"error": message}, status=status)


def _int_param(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    if not raw.lstrip("-").isdigit() or not low <= int(raw) <= high:
        raise web.HTTPUnprocessableEntity(text=f'{{"error": "{name} must be {low}..{high}"}}',
                                          content_type="application/json")
    return int(raw)


def _time_param(request: web.Request, name: str) -> float | None:
    raw = request.query.get(name)
    if raw is None:
        return None
    try:
        return parse_timestamp(raw)
    except ValueError:
        raise web.HTTPUnprocessableEntity(text=f'{{"error": "{name} is not ISO 8601"}}',
                                          content_type="application/json") from None


class Simulators:
    """One SessionFactory per provider, served over HTTP. ``requests`` counts what was asked of each."""

    def __init__(self, clock: Callable[[], float] = time.time, seed: int = 7, rate: float = 0.5,
                 kapso_status_field: bool = True, keys: dict[str, str] | None = None,
                 whatabot_ignores_order: bool = False, honeyhive_ignores_filters: bool = True,
                 dify_logs_at: str = "start", **factory_options: Any) -> None:
        self.clock = clock
        self.keys = {**DEMO_KEYS, **(keys or {})}
        self.factories = {
            p: SessionFactory(p, clock, seed=seed + i, rate=rate,
                              workflow_ids=KAPSO_WORKFLOWS if p == "kapso" else ("wf-1",), **factory_options)
            for i, p in enumerate(PREFIXES)
        }
        #: As the API reference says, list items carry ``status``; False simulates the docs' example.
        self.kapso_status_field = kapso_status_field
        #: A Whatabot that ignores ``orderBy``/``direction`` and lists oldest first.
        self.whatabot_ignores_order = whatabot_ignores_order
        #: A HoneyHive events export and search that let child events through their ``event_type`` filter.
        self.honeyhive_ignores_filters = honeyhive_ignores_filters
        #: When Dify writes a run's log row, whose ``created_at`` is that moment: "start" (newer
        #: versions: running runs are listed) or "finish" (1.x: only ended runs are).
        self.dify_logs_at = dify_logs_at
        self.requests: Counter[str] = Counter()
        #: Fault hooks: provider -> callable(request) returning a Response (or an awaitable of one)
        #: to send instead, or None to answer normally.
        self.faults: dict[str, Callable[[web.Request], Any]] = {}
        #: Payload hooks: provider -> callable(payload) returning the payload to send.
        self.mutators: dict[str, Callable[[Any], Any]] = {}
        self.kapso_minute = [0, 0]  # [minute, requests in it]

    def tick(self) -> None:
        for factory in self.factories.values():
            factory.tick()

    def backfill(self, seconds: float) -> None:
        for factory in self.factories.values():
            factory.backfill(seconds)

    def finish_all(self) -> None:
        for factory in self.factories.values():
            factory.finish_all()

    def app(self) -> web.Application:
        app = web.Application()
        p = PREFIXES
        app.router.add_get(p["whatabot"] + "/sessions/logs", self._guard("whatabot", self.whatabot))
        app.router.add_get(p["dify"] + "/workflows/logs", self._guard("dify", self.dify))
        app.router.add_get(p["syntropic137"] + "/sessions", self._guard("syntropic137", self.syntropic_list))
        app.router.add_get(p["syntropic137"] + "/sessions/{id}", self._guard("syntropic137", self.syntropic_detail))
        app.router.add_get(p["honeyhive"] + "/session", self._guard("honeyhive", self.honeyhive))
        app.router.add_post(p["honeyhive"] + "/v1/events/export", self._guard("honeyhive", self.honeyhive_events))
        app.router.add_post(p["honeyhive"] + "/v1/events/search", self._guard("honeyhive", self.honeyhive_search))
        app.router.add_get(p["kapso"] + "/workflows/{workflow_id}/executions", self._guard("kapso", self.kapso))
        app.router.add_get(p["kapso"] + "/workflow_executions/{id}", self._guard("kapso", self.kapso_detail))
        app.router.add_get(p["kapso"] + "/workflows", self._guard("kapso", self.kapso_workflows))
        app.router.add_get("/ui/kapso/workflows/{workflow}/executions/{id}", self.session_page)
        app.router.add_get("/ui/{provider}/sessions/{id}", self.session_page)
        return app

    async def session_page(self, request: web.Request) -> web.Response:
        """The provider app's page of one session, as far as a simulator has one (the target of links)."""
        factory = self.factories.get(request.match_info.get("provider", "kapso"))
        session = factory.sessions.get(request.match_info["id"]) if factory else None
        if session is None or request.match_info.get("workflow", session.workflow_id) != session.workflow_id:
            return web.Response(status=404, text="no such session\n")
        return web.Response(text=f"<!doctype html><title>Session {session.id}</title><h1>Session {session.id}</h1>"
                                 f"<p>{factory.provider}: {session.status}</p>", content_type="text/html")

    def _guard(self, provider: str, handler: Callable[[web.Request], Any]) -> Callable[[web.Request], Any]:
        async def guarded(request: web.Request) -> web.StreamResponse:
            self.requests[provider] += 1
            if provider in self.faults:
                response = self.faults[provider](request)
                if inspect.isawaitable(response):
                    response = await response
                if response is not None:
                    return response
            key = self.keys[provider]
            header, expected = {"whatabot": ("X-Api-Key", key), "kapso": ("X-API-Key", key)}.get(
                provider, ("Authorization", f"Bearer {key}"))
            # Syntropic137 has no auth of its own; anything else must send its documented header.
            if provider != "syntropic137" and request.headers.get(header) != expected:
                return _bad("unauthorized", 401)
            response = await handler(request)
            if provider in self.mutators:
                payload = self.mutators[provider](json.loads(response.body))
                response = web.json_response(payload, status=response.status)
            return response
        return guarded

    def _sorted(self, provider: str, newest_first: bool = True) -> list[SimSession]:
        return sorted(self.factories[provider].sessions.values(), key=lambda s: (s.started_at, s.id),
                      reverse=newest_first)

    # --- Whatabot: zero-based page, size 1..100, Spring page object --------------------------------
    async def whatabot(self, request: web.Request) -> web.Response:
        page = _int_param(request, "page", 0, 0, 10**6)
        size = _int_param(request, "size", 20, 1, 100)
        q = request.query
        if q.get("direction", "ASC") not in ("ASC", "DESC"):
            return _bad("direction must be ASC or DESC")
        if q.get("dateRange") not in (None, "today", "last7days", "last15days", "last30days"):
            return _bad("unknown dateRange")
        newest_first = q.get("direction", "ASC") == "DESC" and not self.whatabot_ignores_order
        sessions = self._sorted("whatabot", newest_first=newest_first)
        if "dateRange" in q:
            days = {"today": 1, "last7days": 7, "last15days": 15, "last30days": 30}[q["dateRange"]]
            sessions = [s for s in sessions if s.started_at >= self.clock() - days * 86400]
        if "sessionId" in q:
            sessions = [s for s in sessions if s.id == q["sessionId"]]
        if "status" in q:
            sessions = [s for s in sessions if s.status == q["status"]]
        total = len(sessions)
        chunk = sessions[page * size:(page + 1) * size]
        pages = (total + size - 1) // size
        return web.json_response({
            "content": [{
                "id": s.id, "workspaceId": "660e8400-e29b-41d4-a716-446655440000",
                "flowId": "550e8400-e29b-41d4-a716-446655440000", "externalId": f"contact-{s.id[:4]}",
                "status": s.status, "warnings": s.warnings, "startedAt": _iso(s.started_at),
                "expiresAt": _iso(s.started_at + 900), "finishedAt": _iso(s.ended_at),
            } for s in chunk],
            "totalElements": total, "totalPages": pages, "size": size, "number": page,
            "first": page == 0, "last": page >= pages - 1, "empty": not chunk,
        })

    # --- Dify: one-based page, limit 1..100, has_more; newest created_at first --------------------
    async def dify(self, request: web.Request) -> web.Response:
        page = _int_param(request, "page", 1, 1, 99999)
        limit = _int_param(request, "limit", 20, 1, 100)
        after, before = _time_param(request, "created_at__after"), _time_param(request, "created_at__before")
        rows: list[dict[str, Any]] = []
        for s in self._dify_logged():
            logged = self._dify_logged_at(s)
            if not ((after is None or logged >= after) and (before is None or logged <= before)
                    and request.query.get("status") in (None, s.status)):
                continue
            rows.append(self._dify_row(s))
            if request.query.get("status") is None and int(s.id[:2], 16) < 16:
                # Dify allows a log row whose run is null (allow_null=True): one in sixteen here.
                rows.append({**self._dify_row(s), "id": f"log-norun-{s.id}", "workflow_run": None})
        return web.json_response({
            "page": page, "limit": limit, "total": len(rows), "has_more": len(rows) > page * limit,
            "data": rows[(page - 1) * limit:page * limit],
        })

    def _dify_logged(self) -> list[SimSession]:
        """The runs with a log row, newest row first."""
        if self.dify_logs_at == "start":
            return self._sorted("dify")
        ended = [s for s in self.factories["dify"].sessions.values() if s.ended_at is not None]
        return sorted(ended, key=lambda s: (s.ended_at, s.id), reverse=True)

    def _dify_logged_at(self, s: SimSession) -> int:
        """The row's ``created_at``, in whole seconds as the API shows it."""
        return int(s.started_at if self.dify_logs_at == "start" else s.ended_at or 0)

    def _dify_row(self, s: SimSession) -> dict[str, Any]:
        return {
            "id": f"log-{s.id}",
            "workflow_run": {
                "id": s.id, "version": "2025-01-16 12:00:00.000000", "status": s.status, "error": s.error,
                "elapsed_time": round((s.ended_at or self.clock()) - s.started_at, 3),
                "total_tokens": s.tokens.get("total", 0), "total_steps": 3,
                "created_at": int(s.started_at), "finished_at": None if s.ended_at is None else int(s.ended_at),
                "exceptions_count": s.warnings, "triggered_from": "app",
            },
            "created_from": "service-api", "created_by_role": "end_user", "created_by_account": None,
            "created_by_end_user": {"id": "f1e2d3c4", "type": "service_api", "is_anonymous": False,
                                    "session_id": "user_workflow_123"},
            "created_at": self._dify_logged_at(s),
        }

    # --- Syntropic137: limit 1..200, inclusive started_after/before, newest first ---------------
    def _syntropic_item(self, s: SimSession) -> dict[str, Any]:
        def text(ts: float | None) -> str | None:  # str(datetime), as the API produces it
            return None if ts is None else str(datetime.fromtimestamp(ts, timezone.utc))
        tokens = s.tokens
        return {
            "id": s.id, "workflow_id": s.workflow_id, "workflow_name": "demo", "execution_id": f"ex-{s.id[:8]}",
            "phase_id": "p1", "phase_display": "Phase 1", "status": s.status, "agent_provider": "anthropic",
            "agent_model": s.model, "agent_model_display": s.model, "repos": [], "repos_display": "",
            "input_tokens": tokens.get("input", 0), "output_tokens": tokens.get("output", 0),
            "cache_creation_tokens": tokens.get("cache_creation", 0), "cache_read_tokens": tokens.get("cache_read", 0),
            "total_tokens": sum(tokens.values()), "total_tokens_display": str(sum(tokens.values())),
            "total_cost_usd": f"{s.cost:.4f}", "total_cost_display": f"${s.cost:.2f}",
            "duration_seconds": (None if s.ended_at is None or not s.duration_known
                                 else round(s.ended_at - s.started_at, 3)),
            "duration_display": "—", "started_at": text(s.started_at), "completed_at": text(s.ended_at),
        }

    async def syntropic_list(self, request: web.Request) -> web.Response:
        limit = _int_param(request, "limit", 50, 1, 200)
        after, before = _time_param(request, "started_after"), _time_param(request, "started_before")
        q = request.query
        statuses = q["statuses"].split(",") if q.get("statuses") else ([q["status"]] if q.get("status") else None)
        sessions = [s for s in self._sorted("syntropic137")
                    if (after is None or s.started_at >= after) and (before is None or s.started_at <= before)
                    and (statuses is None or s.status in statuses)
                    and q.get("workflow_id") in (None, s.workflow_id)][:limit]
        return web.json_response({"sessions": [self._syntropic_item(s) for s in sessions], "total": len(sessions)})

    async def syntropic_detail(self, request: web.Request) -> web.Response:
        prefix = request.match_info["id"]
        for s in self.factories["syntropic137"].sessions.values():
            if s.id.startswith(prefix):
                item = self._syntropic_item(s)
                item.update({"error_message": s.error, "metadata": {}, "operations": [],
                             "cost_by_model": {s.model: item["total_cost_usd"]}})
                return web.json_response(item)
        return web.json_response({"detail": [{"loc": ["path", "id"], "msg": "not found", "type": "not_found"}]},
                                 status=404)

    # --- HoneyHive: project, limit; a bare list, ms timestamps -----------------------------------
    async def honeyhive(self, request: web.Request) -> web.Response:
        if request.query.get("project") != HONEYHIVE_PROJECT:
            return web.json_response([])
        limit = _int_param(request, "limit", 1000, 1, 10**5)
        return web.json_response([self._honeyhive_session(s) for s in self._sorted("honeyhive")[:limit]])

    def _honeyhive_session(self, s: SimSession) -> dict[str, Any]:
        end = s.ended_at if s.ended_at is not None else s.last_event_at
        return {
            "children": [], "config": {}, "duration": round((end - s.started_at) * 1000),
            "end_time": round(end * 1000) if end > s.started_at or s.ended_at is not None else None,
            "error": s.error, "event_id": s.id, "event_name": "session", "event_type": "session",
            "feedback": {}, "inputs": {}, "metrics": {}, "outputs": {}, "project": HONEYHIVE_PROJECT,
            "metadata": ({"prompt_tokens": s.tokens["input"], "completion_tokens": s.tokens["output"],
                          "total_tokens": s.tokens["input"] + s.tokens["output"], "cost": s.cost,
                          "model": s.model} if s.tokens else {"num_events": 1}),
            "session_id": s.id, "source": "demo", "start_time": round(s.started_at * 1000),
            "user_properties": {},
        }

    def _honeyhive_children(self, s: SimSession) -> list[dict[str, Any]]:
        """A model call and a tool call under the session, as the events API also stores them."""
        end = s.ended_at if s.ended_at is not None else s.last_event_at
        return [{"event_id": f"{s.id[:-4]}{kind[:2]}{n:02d}", "session_id": s.id, "parent_id": s.id,
                 "event_type": kind, "event_name": f"{kind}-call", "start_time": round(s.started_at * 1000),
                 "end_time": round(end * 1000), "duration": round((end - s.started_at) * 1000, 4),
                 "error": "child failure" if kind == "tool" and s.error else None,
                 "metadata": {"cost": 0.01, "total_tokens": 10}, "children_ids": [], "project": HONEYHIVE_PROJECT}
                for n, kind in enumerate(("model", "tool"))]

    # --- HoneyHive events export: POST, filters, dateRange {$gte,$lte} (ISO), limit <= 7500, page ----
    async def honeyhive_events(self, request: web.Request) -> web.Response:
        try:
            query = await request.json()
        except ValueError:
            return _bad("body must be JSON")
        if not isinstance(query, dict) or query.get("project") != HONEYHIVE_PROJECT:
            return _bad("unknown project", 404)
        limit, page = query.get("limit", 1000), query.get("page", 1)
        if not isinstance(limit, int) or not 1 <= limit <= 7500 or not isinstance(page, int) or page < 1:
            return _bad("limit must be 1..7500 and page >= 1")
        date_range = query.get("dateRange") or {}
        try:
            low, high = parse_timestamp(date_range.get("$gte")), parse_timestamp(date_range.get("$lte"))
        except (AttributeError, ValueError):
            return _bad("dateRange bounds must be ISO strings")
        wanted_type = next((f.get("value") for f in query.get("filters") or []
                            if isinstance(f, dict) and f.get("field") == "event_type" and f.get("operator") == "is"), None)
        events: list[dict[str, Any]] = []
        # The export's order is not documented: serve it by id, which is no time order at all.
        for s in sorted(self.factories["honeyhive"].sessions.values(), key=lambda s: s.id):
            start = round(s.started_at * 1000) / 1000  # stored, and filtered on, in milliseconds
            if (low is not None and start < low) or (high is not None and start > high):
                continue
            for event in [self._honeyhive_session(s)] + self._honeyhive_children(s):
                if wanted_type in (None, event["event_type"]) or self.honeyhive_ignores_filters:
                    events.append(event)
        return web.json_response({"events": events[(page - 1) * limit:page * limit], "totalEvents": len(events)})

    # --- HoneyHive events search (v2): POST, filters, dateRange {start_time,end_time} (ISO), limit <= 1000,
    # page; no project (the key is project-scoped); always newest start_time first; answers {events, count} ---
    SEARCH_KEYS = frozenset({"filters", "dateRange", "limit", "page", "ignore_order", "evaluation_id"})
    SEARCH_OPERATORS = frozenset({"is", "is not", "exists", "not exists", "contains", "not contains", "greater than",
                                  "less than", "after", "before"})

    async def honeyhive_search(self, request: web.Request) -> web.Response:
        try:
            query = await request.json()
        except ValueError:
            return _bad("body must be JSON")
        if not isinstance(query, dict) or not query.keys() <= self.SEARCH_KEYS:
            return _bad(f"unknown fields: {sorted(set(query) - self.SEARCH_KEYS) if isinstance(query, dict) else query}")
        limit, page = query.get("limit", 1000), query.get("page", 1)
        if type(limit) is not int or not 1 <= limit <= 1000 or type(page) is not int or page < 1:
            return _bad("limit must be 1..1000 and page >= 1")
        date_range = query.get("dateRange") or {}
        try:
            low, high = parse_timestamp(date_range.get("start_time")), parse_timestamp(date_range.get("end_time"))
        except (AttributeError, ValueError):
            return _bad("dateRange bounds must be ISO 8601 strings")
        wanted: dict[str, str] = {}
        for rule in query.get("filters") or []:
            if not isinstance(rule, dict) or rule.get("operator") not in self.SEARCH_OPERATORS or "field" not in rule:
                return _bad("a filter is {field, operator, value, type}")
            if rule["operator"] == "is":  # the only one the exporter sends; the others are accepted, not applied
                wanted[rule["field"]] = rule.get("value")
        if self.honeyhive_ignores_filters:
            wanted.pop("event_type", None)
        events = []
        for s in self.factories["honeyhive"].sessions.values():
            start = round(s.started_at * 1000) / 1000  # stored, and filtered on, in milliseconds
            if (low is not None and start < low) or (high is not None and start > high):
                continue
            events += [event for event in [self._honeyhive_session(s)] + self._honeyhive_children(s)
                       if all(str(event.get(field)) == value for field, value in wanted.items())]
        events.sort(key=lambda event: (-event["start_time"], event["event_id"]))
        return web.json_response({"events": events[(page - 1) * limit:page * limit], "count": len(events)})

    # --- Kapso: cursor pages (limit 1..100), created_after/before inclusive, status filter ---------
    async def kapso(self, request: web.Request) -> web.Response:
        workflow_id = request.match_info["workflow_id"]
        if workflow_id not in KAPSO_WORKFLOWS:
            return _bad("workflow not found", 404)
        limit = _int_param(request, "limit", 20, 1, 100)
        after, before = _time_param(request, "created_after"), _time_param(request, "created_before")
        status = request.query.get("status")
        if status not in (None, *KAPSO_STATUSES):
            return _bad("unknown status", 422)
        sessions = [s for s in self._sorted("kapso") if s.workflow_id == workflow_id
                    and (after is None or s.started_at >= after) and (before is None or s.started_at <= before)
                    and status in (None, s.status)]
        if request.query.get("after"):
            try:
                position = base64.b64decode(request.query["after"]).decode().split("|")
                key = (float(position[0]), position[1])
            except (ValueError, IndexError):
                return _bad("invalid cursor")
            sessions = [s for s in sessions if (s.started_at, s.id) < key]
        chunk = sessions[:limit]
        more = len(sessions) > limit

        def cursor(s: SimSession) -> str:
            return base64.b64encode(f"{s.started_at!r}|{s.id}".encode()).decode()
        paging: dict[str, Any] = {"cursors": {"before": cursor(chunk[0]) if chunk else None,
                                              "after": cursor(chunk[-1]) if chunk else None},
                                  "next": f"{request.path}?after={cursor(chunk[-1])}" if more else None,
                                  "previous": None}
        data = [self._kapso_item(s) for s in chunk]
        return web.json_response({"data": data, "paging": paging}, headers=self._kapso_rate_limit())

    async def kapso_workflows(self, request: web.Request) -> web.Response:
        """``GET /workflows``: the workflows, two to a page behind ``paging.cursors.after``."""
        limit = min(_int_param(request, "limit", 20, 1, 100), 2)
        start = int(request.query.get("after") or 0)
        chunk = KAPSO_WORKFLOWS[start:start + limit]
        more = start + limit < len(KAPSO_WORKFLOWS)
        paging = {"cursors": {"before": str(start), "after": str(start + limit)},
                  "next": f"{request.path}?after={start + limit}" if more else None, "previous": None}
        data = [{"id": w, "name": KAPSO_WORKFLOW_NAMES[w], "status": "active"} for w in chunk]
        return web.json_response({"data": data, "paging": paging}, headers=self._kapso_rate_limit())

    async def kapso_detail(self, request: web.Request) -> web.Response:
        session = self.factories["kapso"].sessions.get(request.match_info["id"])
        if session is None:
            return _bad("execution not found", 404)
        return web.json_response({"data": self._kapso_item(session)}, headers=self._kapso_rate_limit())

    def _kapso_item(self, s: SimSession) -> dict[str, Any]:
        item: dict[str, Any] = {
            "id": s.id, "started_at": _iso(s.started_at), "last_event_at": _iso(s.last_event_at),
            "ended_at": _iso(s.ended_at), "tracking_id": s.id, "whatsapp_conversation_id": s.id,
            "workflow": {"id": s.workflow_id, "name": KAPSO_WORKFLOW_NAMES[s.workflow_id], "status": "active"},
            "current_step": {"id": s.id, "identifier": "step", "stepable_type": "AgentStep",
                             "position": {"x": 1, "y": 1}}}
        if self.kapso_status_field:
            item["status"] = s.status
        if s.status == "failed":
            item["error_details"] = {"message": s.error}
        return item

    def _kapso_rate_limit(self) -> dict[str, str]:
        """Kapso counts requests per API key per fixed minute and reports what is left."""
        minute = int(self.clock() // 60)
        if self.kapso_minute[0] != minute:
            self.kapso_minute = [minute, 0]
        self.kapso_minute[1] += 1
        return {"X-RateLimit-Limit": "1000", "X-RateLimit-Remaining": str(max(0, 1000 - self.kapso_minute[1]))}
