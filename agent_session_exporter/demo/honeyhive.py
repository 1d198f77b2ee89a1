"""The simulated HoneyHive APIs: ``GET /session`` (a bare list, ms timestamps), the events export
``POST /v1/events/export`` and the events search ``POST /v1/events/search``; each session with a
model call and a tool call under it, as the events API stores them."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from agent_session_exporter.demo.params import bad, by_start, int_param
from agent_session_exporter.demo.sessions import SessionFactory, SimSession
from agent_session_exporter.timeparse import parse_timestamp

#: The search's body fields and filter operators.
SEARCH_KEYS = frozenset({"filters", "dateRange", "limit", "page", "ignore_order", "evaluation_id"})
SEARCH_OPERATORS = frozenset(
    {"is", "is not", "exists", "not exists", "contains", "not contains", "greater than", "less than", "after", "before"}
)


class HoneyHiveApi:
    def __init__(self, factory: SessionFactory, project: str, ignores_filters: bool = True) -> None:
        self.factory = factory
        self.project = project
        #: An events export and search that let child events through their ``event_type`` filter.
        self.ignores_filters = ignores_filters

    def routes(self, prefix: str) -> list[web.RouteDef]:
        return [
            web.get(prefix + "/session", self.sessions),
            web.post(prefix + "/v1/events/export", self.export),
            web.post(prefix + "/v1/events/search", self.search),
        ]

    # --- project, limit; a bare list, ms timestamps -----------------------------------------------
    async def sessions(self, request: web.Request) -> web.Response:
        if request.query.get("project") != self.project:
            return web.json_response([])
        limit = int_param(request, "limit", 1000, 1, 10**5)
        return web.json_response([self._session(s) for s in by_start(self.factory)[:limit]])

    def _session(self, s: SimSession) -> dict[str, Any]:
        end = s.ended_at if s.ended_at is not None else s.last_event_at
        return {
            "children": [],
            "config": {},
            "duration": round((end - s.started_at) * 1000),
            "end_time": round(end * 1000) if end > s.started_at or s.ended_at is not None else None,
            "error": s.error,
            "event_id": s.id,
            "event_name": "session",
            "event_type": "session",
            "feedback": {},
            "inputs": {},
            "metrics": {},
            "outputs": {},
            "project": self.project,
            "metadata": (
                {
                    "prompt_tokens": s.tokens["input"],
                    "completion_tokens": s.tokens["output"],
                    "total_tokens": s.tokens["input"] + s.tokens["output"],
                    "cost": s.cost,
                    "model": s.model,
                }
                if s.tokens
                else {"num_events": 1}
            ),
            "session_id": s.id,
            "source": "demo",
            "start_time": round(s.started_at * 1000),
            "user_properties": {},
        }

    def _children(self, s: SimSession) -> list[dict[str, Any]]:
        """A model call and a tool call under the session, as the events API also stores them."""
        end = s.ended_at if s.ended_at is not None else s.last_event_at
        return [
            {
                "event_id": f"{s.id[:-4]}{kind[:2]}{n:02d}",
                "session_id": s.id,
                "parent_id": s.id,
                "event_type": kind,
                "event_name": f"{kind}-call",
                "start_time": round(s.started_at * 1000),
                "end_time": round(end * 1000),
                "duration": round((end - s.started_at) * 1000, 4),
                "error": "child failure" if kind == "tool" and s.error else None,
                "metadata": {"cost": 0.01, "total_tokens": 10},
                "children_ids": [],
                "project": self.project,
            }
            for n, kind in enumerate(("model", "tool"))
        ]

    # --- events export: POST, filters, dateRange {$gte,$lte} (ISO), limit <= 7500, page ----------
    async def export(self, request: web.Request) -> web.Response:
        try:
            query = await request.json()
        except ValueError:
            return bad("body must be JSON")
        if not isinstance(query, dict) or query.get("project") != self.project:
            return bad("unknown project", 404)
        limit, page = query.get("limit", 1000), query.get("page", 1)
        if not isinstance(limit, int) or not 1 <= limit <= 7500 or not isinstance(page, int) or page < 1:
            return bad("limit must be 1..7500 and page >= 1")
        date_range = query.get("dateRange") or {}
        try:
            low, high = parse_timestamp(date_range.get("$gte")), parse_timestamp(date_range.get("$lte"))
        except (AttributeError, ValueError):
            return bad("dateRange bounds must be ISO strings")
        wanted_type = next(
            (
                f.get("value")
                for f in query.get("filters") or []
                if isinstance(f, dict) and f.get("field") == "event_type" and f.get("operator") == "is"
            ),
            None,
        )
        events: list[dict[str, Any]] = []
        # The export's order is not documented: serve it by id, which is no time order at all.
        for s in sorted(self.factory.sessions.values(), key=lambda s: s.id):
            start = round(s.started_at * 1000) / 1000  # stored, and filtered on, in milliseconds
            if (low is not None and start < low) or (high is not None and start > high):
                continue
            for event in [self._session(s)] + self._children(s):
                if wanted_type in (None, event["event_type"]) or self.ignores_filters:
                    events.append(event)
        return web.json_response({"events": events[(page - 1) * limit : page * limit], "totalEvents": len(events)})

    # --- events search (v2): POST, filters, dateRange {start_time,end_time} (ISO), limit <= 1000, page;
    # no project (the key is project-scoped); always newest start_time first; answers {events, count} ---
    async def search(self, request: web.Request) -> web.Response:
        try:
            query = await request.json()
        except ValueError:
            return bad("body must be JSON")
        if not isinstance(query, dict) or not query.keys() <= SEARCH_KEYS:
            return bad(f"unknown fields: {sorted(set(query) - SEARCH_KEYS) if isinstance(query, dict) else query}")
        limit, page = query.get("limit", 1000), query.get("page", 1)
        if type(limit) is not int or not 1 <= limit <= 1000 or type(page) is not int or page < 1:
            return bad("limit must be 1..1000 and page >= 1")
        date_range = query.get("dateRange") or {}
        try:
            low, high = parse_timestamp(date_range.get("start_time")), parse_timestamp(date_range.get("end_time"))
        except (AttributeError, ValueError):
            return bad("dateRange bounds must be ISO 8601 strings")
        wanted: dict[str, Any] = {}
        for rule in query.get("filters") or []:
            if not isinstance(rule, dict) or rule.get("operator") not in SEARCH_OPERATORS or "field" not in rule:
                return bad("a filter is {field, operator, value, type}")
            if rule["operator"] == "is":  # the only one the exporter sends; the others are accepted, not applied
                wanted[rule["field"]] = rule.get("value")
        if self.ignores_filters:
            wanted.pop("event_type", None)
        events = []
        for s in self.factory.sessions.values():
            start = round(s.started_at * 1000) / 1000  # stored, and filtered on, in milliseconds
            if (low is not None and start < low) or (high is not None and start > high):
                continue
            events += [
                event
                for event in [self._session(s)] + self._children(s)
                if all(str(event.get(field)) == value for field, value in wanted.items())
            ]
        events.sort(key=lambda event: (-event["start_time"], event["event_id"]))
        return web.json_response({"events": events[(page - 1) * limit : page * limit], "count": len(events)})
