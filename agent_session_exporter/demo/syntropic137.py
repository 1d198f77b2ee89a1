"""The simulated Syntropic137 API: ``GET /sessions`` (``limit`` 1..200, inclusive
``started_after``/``started_before``, ``status``/``statuses`` and ``workflow_id`` filters, newest
first), ``GET /sessions/{id}`` (by id prefix) and the activity feed ``GET /sse/activity``
(``ActivityFeed``). No auth of its own."""

from __future__ import annotations

import asyncio
import json
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
        self.activity = ActivityFeed(factory)

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


def frame(event_type: str, data: dict[str, Any], kind: str = "event") -> bytes:
    """One frame of the activity feed as Syntropic137 writes it: ``data: <SSEEventFrame JSON>``, a blank
    line (no ``id:``, no ``event:``; ``execution_id`` is null on the activity channel)."""
    payload = {
        "type": kind,
        "event_type": event_type,
        "execution_id": None,
        "data": data,
        "timestamp": datetime.now(timezone.utc).isoformat(),
    }
    return f"data: {json.dumps(payload, separators=(',', ':'))}\n\n".encode()


def session_completed(s: SimSession) -> bytes:
    """``SessionCompleted`` as its domain event reads (tokens, no cost, no start)."""
    tokens = s.tokens
    return frame(
        "SessionCompleted",
        {
            "session_id": s.id,
            "status": s.status,
            "completed_at": _text(s.ended_at),
            "total_input_tokens": tokens.get("input", 0),
            "total_output_tokens": tokens.get("output", 0),
            "total_cache_creation_tokens": tokens.get("cache_creation", 0),
            "total_cache_read_tokens": tokens.get("cache_read", 0),
            "total_tokens": sum(tokens.values()),
            "operation_count": 3,
            "error_message": s.error,
        },
    )


#: What a subscriber's queue holds: bytes to write, END (the stream ends cleanly) or ABORT (the
#: connection is cut, mid-frame as like as not).
END, ABORT = "end", "abort"


class ActivityFeed:
    """Syntropic137's ``GET /sse/activity``: a ``connected`` frame, then ``SessionCompleted`` for each
    session the simulator ends, and a ``: keepalive`` comment after ``keepalive`` seconds without a
    frame. No ``id``, no replay: what ends while nobody listens is never sent. The tests write raw
    bytes (``send``), cut or end the streams (``drop``), or have it answer an HTTP status (``refuse``)."""

    def __init__(self, factory: SessionFactory, keepalive: float = 30.0) -> None:
        self.keepalive = keepalive
        self.subscribers: set[asyncio.Queue[bytes | str]] = set()
        #: Streams answered so far.
        self.connections = 0
        #: An HTTP status to answer instead of the stream (None: the stream).
        self.refuse: int | None = None
        #: The ``Authorization`` header of the last stream asked for.
        self.authorization: str | None = None
        factory.on_status = self.note

    def note(self, session: SimSession) -> None:
        if not session.running:
            self.send(session_completed(session))

    def send(self, raw: bytes) -> None:
        for queue in self.subscribers:
            queue.put_nowait(raw)

    async def close(self, app: web.Application | None = None) -> None:
        """End every stream (the server's shutdown: ``on_shutdown``)."""
        self.drop()

    def drop(self, abort: bool = False) -> None:
        """End every stream open now (``abort``: cut its connection instead)."""
        for queue in self.subscribers:
            queue.put_nowait(ABORT if abort else END)

    async def stream(self, request: web.Request) -> web.StreamResponse:
        self.authorization = request.headers.get("Authorization")
        if self.refuse is not None:
            return web.json_response({"detail": "refused"}, status=self.refuse)
        queue: asyncio.Queue[bytes | str] = asyncio.Queue()
        self.subscribers.add(queue)
        try:
            response = web.StreamResponse(
                headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
            )
            await response.prepare(request)
            self.connections += 1
            await response.write(frame("connected", {"channel": "activity"}, kind="connected"))
            while True:
                try:
                    item = await asyncio.wait_for(queue.get(), self.keepalive)
                except TimeoutError:
                    item = b": keepalive\n\n"
                if item == ABORT and request.transport is not None:
                    request.transport.abort()
                if isinstance(item, str):
                    return response
                await response.write(item)
        except ConnectionResetError:  # the client went away (noticed at the next write)
            return response
        finally:
            self.subscribers.discard(queue)
