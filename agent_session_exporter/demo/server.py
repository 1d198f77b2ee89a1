"""The six provider APIs, simulated on one aiohttp app, each under its own prefix and shaped
exactly like its documentation in shared/seeds (pagination, filters, auth, field names; n8n like a
real n8n's recorded answers). Each API is a module of its own (``demo/whatabot.py``, ``dify.py``,
``syntropic137.py``, ``honeyhive.py``, ``kapso.py``, ``n8n.py``); this one holds them together behind
the documented auth."""

from __future__ import annotations

import inspect
import json
import time
from collections import Counter
from typing import Any, Awaitable, Callable, Protocol

from aiohttp import web

from agent_session_exporter.demo.dify import DifyApi
from agent_session_exporter.demo.honeyhive import HoneyHiveApi
from agent_session_exporter.demo.kapso import KapsoApi
from agent_session_exporter.demo.n8n import N8nFactory
from agent_session_exporter.demo.n8n_api import N8N_KEY, N8N_PREFIX, N8nSimulator
from agent_session_exporter.demo.params import bad
from agent_session_exporter.demo.sessions import SessionFactory
from agent_session_exporter.demo.syntropic137 import Syntropic137Api
from agent_session_exporter.demo.whatabot import WhatabotApi

DEMO_KEYS = {p: f"demo-{p}-key" for p in ("whatabot", "dify", "syntropic137", "honeyhive", "kapso")} | {"n8n": N8N_KEY}
PREFIXES = {
    "whatabot": "/whatabot/api/v1",
    "dify": "/dify/v1",
    "syntropic137": "/syntropic137",
    "honeyhive": "/honeyhive",
    "kapso": "/kapso/platform/v1",
    "n8n": N8N_PREFIX,
}
HONEYHIVE_PROJECT = "demo-project"
KAPSO_WORKFLOWS = ("8f14e45f-ceea-467f-a0e6-0a1b2c3d4e5f", "c9f0f895-fb98-4b91-9e6a-112233445566")
KAPSO_WORKFLOW_NAMES = dict(zip(KAPSO_WORKFLOWS, ("Support intake", "Order status"), strict=True))
#: The simulators' own pages of one session (the demo's ``session_url``): provider -> path under /ui.
UI_PATHS = {p: f"/ui/{p}/sessions/{{session_id}}" for p in ("whatabot", "dify", "syntropic137", "honeyhive")} | {
    "kapso": "/ui/kapso/workflows/{workflow}/executions/{session_id}",
    "n8n": "/ui/n8n/workflow/{workflow}/executions/{session_id}",
}
#: How each API takes its key (Syntropic137 has no auth of its own; n8n's simulator checks its own, with
#: n8n's answers): the header and its value's prefix.
_AUTH = {
    "whatabot": ("X-Api-Key", ""),
    "kapso": ("X-API-Key", ""),
    "dify": ("Authorization", "Bearer "),
    "honeyhive": ("Authorization", "Bearer "),
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
#: A fault hook: the response to send instead (or an awaitable of it), or None to answer normally.
Fault = Callable[[web.Request], "web.StreamResponse | Awaitable[web.StreamResponse | None] | None"]


class SimulatedApi(Protocol):
    """One simulated API: its handlers, under the prefix it is served at."""

    def routes(self, prefix: str) -> list[web.RouteDef]: ...


class Simulators:
    """One SessionFactory per provider, served over HTTP. ``requests`` counts what was asked of each."""

    def __init__(
        self,
        clock: Callable[[], float] = time.time,
        seed: int = 7,
        rate: float = 0.5,
        kapso_status_field: bool = True,
        keys: dict[str, str] | None = None,
        whatabot_ignores_order: bool = False,
        honeyhive_ignores_filters: bool = True,
        dify_logs_at: str = "start",
        n8n_waiting_share: float = 0.1,
        **factory_options: Any,
    ) -> None:
        self.clock = clock
        self.keys = {**DEMO_KEYS, **(keys or {})}
        self.n8n = N8nFactory(
            clock, seed=seed + list(PREFIXES).index("n8n"), rate=rate, waiting_share=n8n_waiting_share, **factory_options
        )
        self.factories: dict[str, SessionFactory] = {
            p: SessionFactory(
                p, clock, seed=seed + i, rate=rate, workflow_ids=KAPSO_WORKFLOWS if p == "kapso" else ("wf-1",), **factory_options
            )
            if p != "n8n"
            else self.n8n
            for i, p in enumerate(PREFIXES)
        }
        f = self.factories
        self.kapso = KapsoApi(f["kapso"], clock, KAPSO_WORKFLOW_NAMES, status_field=kapso_status_field)
        self.syntropic137 = Syntropic137Api(f["syntropic137"])
        #: provider -> its simulated API (``routes(prefix)``: its handlers).
        self.apis: dict[str, SimulatedApi] = {
            "whatabot": WhatabotApi(f["whatabot"], clock, ignores_order=whatabot_ignores_order),
            "dify": DifyApi(f["dify"], clock, logs_at=dify_logs_at),
            "syntropic137": self.syntropic137,
            "honeyhive": HoneyHiveApi(f["honeyhive"], HONEYHIVE_PROJECT, honeyhive_ignores_filters),
            "kapso": self.kapso,
            "n8n": N8nSimulator(self.n8n, self.keys["n8n"]),
        }
        self.requests: Counter[str] = Counter()
        #: Fault hooks: provider -> callable(request) returning a Response (or an awaitable of one)
        #: to send instead, or None to answer normally.
        self.faults: dict[str, Fault] = {}
        #: Payload hooks: provider -> callable(payload) returning the payload to send.
        self.mutators: dict[str, Callable[[Any], Any]] = {}

    @property
    def kapso_minute(self) -> list[int]:
        """Kapso's rate limit window: [minute, requests in it]."""
        return self.kapso.minute

    def tick(self) -> None:
        for factory in self.factories.values():
            factory.tick()

    def backfill(self, seconds: float) -> None:
        """The history before the exporter's first read; n8n's without waits: one that resumed before any
        read leaves no trace of its start, so its duration would run from the resume (as the README says)."""
        share, self.n8n.waiting_share = self.n8n.waiting_share, 0.0
        for factory in self.factories.values():
            factory.backfill(seconds)
        self.n8n.waiting_share = share

    def finish_all(self) -> None:
        for factory in self.factories.values():
            factory.finish_all()

    def app(self) -> web.Application:
        app = web.Application()
        for provider, api in self.apis.items():
            for route in api.routes(PREFIXES[provider]):
                app.router.add_route(route.method, route.path, self._guard(provider, route.handler))
        # Syntropic137's activity feed: a stream, neither counted in ``requests`` nor given faults (those are the polls').
        app.router.add_get(PREFIXES["syntropic137"] + "/sse/activity", self.syntropic137.activity.stream)
        app.on_shutdown.append(self.syntropic137.activity.close)
        app.router.add_get("/ui/kapso/workflows/{workflow}/executions/{id}", self.session_page)
        app.router.add_get("/ui/{provider:n8n}/workflow/{workflow}/executions/{id}", self.session_page)
        app.router.add_get("/ui/{provider}/sessions/{id}", self.session_page)
        return app

    async def session_page(self, request: web.Request) -> web.Response:
        """The provider app's page of one session, as far as a simulator has one (the target of links)."""
        factory = self.factories.get(request.match_info.get("provider", "kapso"))
        session = factory.sessions.get(request.match_info["id"]) if factory else None
        if factory is None or session is None or (request.match_info.get("workflow", session.workflow_id) != session.workflow_id):
            return web.Response(status=404, text="no such session\n")
        return web.Response(
            text=f"<!doctype html><title>Session {session.id}</title><h1>Session {session.id}</h1>"
            f"<p>{factory.provider}: {session.status}</p>",
            content_type="text/html",
        )

    def _guard(self, provider: str, handler: Handler) -> Handler:
        async def guarded(request: web.Request) -> web.StreamResponse:
            self.requests[provider] += 1
            if provider in self.faults:
                response = self.faults[provider](request)
                if inspect.isawaitable(response):
                    response = await response
                if response is not None:
                    return response
            if provider in _AUTH:
                header, prefix = _AUTH[provider]
                if request.headers.get(header) != prefix + self.keys[provider]:
                    return bad("unauthorized", 401)
            response = await handler(request)
            if provider in self.mutators and isinstance(response, web.Response) and isinstance(response.body, bytes):
                payload = self.mutators[provider](json.loads(response.body))
                response = web.json_response(payload, status=response.status)
            return response

        return guarded
