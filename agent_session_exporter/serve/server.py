"""The HTTP face: ``/metrics`` (never calls upstream), ``/healthz``, the ``/`` landing page and
``/sessions/{source}/{id}`` (a redirect to the provider's page of that session)."""

from __future__ import annotations

from aiohttp import web
from prometheus_client.exposition import choose_encoder

from agent_session_exporter.serve.landing import render_landing
from agent_session_exporter.serve.links import MissingValue
from agent_session_exporter.serve.listener import ConnectionGuard
from agent_session_exporter.serve.status import Served
from agent_session_exporter.serve.webconfig import basic_auth_middleware


def make_app(
    exporter: Served,
    users: dict[str, bytes] | None = None,
    guard: ConnectionGuard | None = None,
    telemetry_path: str = "/metrics",
) -> web.Application:
    """The HTTP app; with ``users`` (name -> bcrypt hash) every path but /healthz needs basic auth;
    ``guard`` (the listener's connection limits) sees every request first."""

    async def metrics(request: web.Request) -> web.Response:
        # OpenMetrics when the scraper asks for it, gzip when it accepts it: as prometheus_client does.
        _, content_type = choose_encoder(request.headers.get("Accept", ""))
        gzipped = "gzip" in request.headers.get("Accept-Encoding", "")
        body = await exporter.render_metrics_async(content_type.startswith("application/openmetrics-text"), gzipped)
        headers = {"Content-Type": content_type}
        if gzipped:  # from blocks compressed once each (serve/blocks.py)
            headers["Content-Encoding"] = "gzip"
        return web.Response(body=body, headers=headers)

    async def healthz(request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def index(request: web.Request) -> web.Response:
        return web.Response(text=render_landing(exporter.pollers, telemetry_path, exporter.clock()), content_type="text/html")

    async def session(request: web.Request) -> web.Response:
        """Redirect to the provider's page of one session (the target of Grafana's exemplar links)."""
        source, session_id = request.match_info["source"], request.match_info["session_id"]
        poller = exporter.pollers.get(source)
        if poller is None:
            return web.Response(status=404, text=f"no source named {source!r} is configured\n")
        try:
            url = poller.recent.session_url(session_id, request.query.get("workflow"))
        except MissingValue:
            return web.Response(
                status=404,
                text=f"source {source!r} links sessions by workflow, and the workflow of "
                "this session is not known: add ?workflow=<id>\n",
            )
        if url is None:
            return web.Response(
                status=404,
                text=f"source {source!r} has no session_url: set one in its config to link sessions to the provider's app\n",
            )
        raise web.HTTPFound(url)

    middlewares = ([guard.middleware] if guard else []) + ([basic_auth_middleware(users)] if users else [])
    app = web.Application(middlewares=middlewares)
    app.router.add_get(telemetry_path, metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/", index)
    app.router.add_get("/sessions/{source}/{session_id}", session)
    return app
