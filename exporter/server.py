"""The HTTP face: ``/metrics`` (never calls upstream), ``/healthz`` and a ``/`` landing page."""

from __future__ import annotations

import gzip
import html
import time

from aiohttp import web
from prometheus_client.exposition import choose_encoder

from . import __version__
from .app import Exporter
from .listener import ConnectionGuard
from .logs import redactor
from .webconfig import basic_auth_middleware


def make_app(exporter: Exporter, users: dict[str, bytes] | None = None,
             guard: ConnectionGuard | None = None, telemetry_path: str = "/metrics") -> web.Application:
    """The HTTP app; with ``users`` (name -> bcrypt hash) every path but /healthz needs basic auth;
    ``guard`` (the listener's connection limits) sees every request first."""
    async def metrics(request: web.Request) -> web.Response:
        # OpenMetrics when the scraper asks for it, gzip when it accepts it: as prometheus_client does.
        _, content_type = choose_encoder(request.headers.get("Accept", ""))
        body = exporter.render_metrics(openmetrics=content_type.startswith("application/openmetrics-text"))
        headers = {"Content-Type": content_type}
        if "gzip" in request.headers.get("Accept-Encoding", ""):
            body = gzip.compress(body, compresslevel=6)
            headers["Content-Encoding"] = "gzip"
        return web.Response(body=body, headers=headers)

    async def healthz(request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def index(request: web.Request) -> web.Response:
        rows = []
        for name, collector in exporter.collectors.items():
            age = (f"{time.time() - collector.last_success:.0f}s ago" if collector.last_success else "never")
            rows.append("<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>".format(
                *(html.escape(redactor.redact(str(v))) for v in
                  (name, collector.source.provider, age, collector.last_result))))
        page = (
            "<!doctype html><html><head><meta charset='utf-8'><title>Agent session exporter</title></head><body>"
            f"<h1>Agent session exporter {html.escape(__version__)}</h1>"
            f"<p><a href='{html.escape(telemetry_path)}'>Metrics</a> &middot; <a href='/healthz'>Health</a></p>"
            "<table border='1' cellpadding='4'><tr><th>source</th><th>provider</th><th>last success</th>"
            f"<th>last result</th></tr>{''.join(rows)}</table></body></html>"
        )
        return web.Response(text=page, content_type="text/html")

    middlewares = ([guard.middleware] if guard else []) + ([basic_auth_middleware(users)] if users else [])
    app = web.Application(middlewares=middlewares)
    app.router.add_get(telemetry_path, metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/", index)
    return app
