"""The webhook listener: ``POST /webhooks/kapso/<source>``, on an address of its own
(``--web.webhook-address``, off by default), so the scrape port is never exposed to the internet
and its basic auth never refuses the pusher.

It follows the scrape port's server rules (``serve/listener.py``: the connection cap, the header,
handshake, write and keep-alive timeouts), and a body must arrive within ``BODY_TIMEOUT`` and be at
most ``MAX_BODY_BYTES``. The signature (hex HMAC-SHA256 of the raw body with the source's
``webhook_secret``) is checked in constant time before anything is parsed. A valid push is answered
200 at once; what it names is handed to the source's queue of hints, looked up by its loop
(``pushes.py``). Every push is counted by outcome (``serve/pushmetrics.py``); a body is never logged
and no answer echoes anything a request sent.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ssl
import time
from dataclasses import dataclass
from typing import Any, Callable, Protocol

import structlog
from aiohttp import web

from agent_session_exporter.config import parse_listen
from agent_session_exporter.count.hints import Hint, SeenKeys
from agent_session_exporter.read.kapso_webhooks import Malformed, read_delivery
from agent_session_exporter.serve.listener import KEEPALIVE_TIMEOUT, ConnectionGuard, listen

log = structlog.get_logger()

MAX_BODY_BYTES = 1024 * 1024
BODY_TIMEOUT = 10.0
#: Told where the webhook listener is, once it listens (its base URL): the demo's pusher.
OnListening = Callable[[str], None]
#: A source's warnings about refused pushes (bad signatures, malformed bodies) are logged at most this often.
LOG_EVERY = 60.0


class PushSink(Protocol):
    """Where the listener hands pushes: the running exporter's sources that take them."""

    #: The exporter's clock: when a push arrived.
    clock: Callable[[], float]

    def webhook_secret(self, provider: str, source: str) -> bytes | None:
        """The source's secret, or None when no source of that name and provider takes pushes."""

    def polls_workflow(self, source: str, workflow: str) -> bool: ...

    def hint(self, hint: Hint) -> bool:
        """Queue ``hint`` for a lookup; False when the source's queue is full."""

    def pushed(self, source: str, provider: str, outcome: str, count: int = 1) -> None: ...


def signature_ok(secret: bytes, body: bytes, signature: str | None) -> bool:
    """Whether ``signature`` is the hex HMAC-SHA256 of ``body`` (``sha256=`` before it is taken too),
    compared in constant time."""
    if not signature:
        return False
    given = signature.strip().removeprefix("sha256=").lower().encode("utf-8", "replace")
    return hmac.compare_digest(hmac.new(secret, body, hashlib.sha256).hexdigest().encode(), given)


def _digest(*parts: str) -> bytes:
    """What an idempotency key (or an event) is remembered by: 32 bytes, however long what was pushed."""
    return hashlib.sha256("\0".join(parts).encode("utf-8", "surrogatepass")).digest()


def make_webhook_app(sink: PushSink, guard: ConnectionGuard | None = None, keys: SeenKeys | None = None) -> web.Application:
    """The webhook app; ``guard`` (the listener's connection limits) sees every request first."""
    seen = keys if keys is not None else SeenKeys()
    warned: dict[tuple[str, str], float] = {}

    def warn(source: str, what: str, **context: Any) -> None:
        now = time.monotonic()
        if now - warned.get((source, what), -LOG_EVERY) >= LOG_EVERY:
            warned[(source, what)] = now
            log.warning(what, source=source, provider="kapso", **context)

    async def kapso(request: web.Request) -> web.Response:
        source = request.match_info["source"]
        secret = sink.webhook_secret("kapso", source)
        if secret is None:
            sink.pushed("", "kapso", "unknown_source")
            return web.Response(status=404, text="no source of this name takes Kapso webhooks\n")
        try:
            async with asyncio.timeout(BODY_TIMEOUT):
                body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            sink.pushed(source, "kapso", "oversized")
            warn(source, "a webhook body over 1 MiB was refused")
            return web.Response(status=413, text="body too large\n")
        except TimeoutError:
            sink.pushed(source, "kapso", "malformed")
            return web.Response(status=408, text="body too slow\n")
        received = sink.clock()
        if not signature_ok(secret, body, request.headers.get("X-Webhook-Signature")):
            sink.pushed(source, "kapso", "bad_signature")
            warn(
                source,
                "a webhook with a missing or wrong signature was refused (is webhook_secret the one "
                "Kapso shows for this webhook?)",
            )
            return web.Response(status=401, text="bad signature\n")
        try:
            events, bad = read_delivery(body, request.headers.get("X-Webhook-Event"))
        except Malformed:
            events, bad = [], 1
        if bad:
            sink.pushed(source, "kapso", "malformed", bad)
            warn(source, "webhook events naming no workflow execution were ignored", events=bad)
        if not events:
            return web.Response(status=400 if bad else 200, text="no workflow execution named\n" if bad else "ok\n")
        idempotency = request.headers.get("X-Idempotency-Key")
        repeated = bool(idempotency and not seen.first_time(_digest(source, "delivery", idempotency)))
        for event in events:
            if not seen.first_time(_digest(source, "event", *event.key)) or repeated:
                outcome = "duplicate"
            elif event.workflow is not None and not sink.polls_workflow(source, event.workflow):
                outcome = "unknown_workflow"
            else:
                hint = Hint(source, event.session_id, received, "webhook", event.workflow)
                outcome = "accepted" if sink.hint(hint) else "dropped"
            sink.pushed(source, "kapso", outcome)
        return web.Response(text="ok\n")

    app = web.Application(middlewares=[guard.middleware] if guard else [], client_max_size=MAX_BODY_BYTES)
    app.router.add_post("/webhooks/kapso/{source}", kapso)
    return app


@dataclass
class WebhookListener:
    runner: web.AppRunner
    server: asyncio.AbstractServer
    #: Where it listens, as ``scheme://host:port`` (a wildcard address as loopback).
    url: str

    async def close(self) -> None:
        self.server.close()
        await self.runner.cleanup()


async def open_webhook_listener(
    sink: PushSink,
    address: str,
    max_connections: int,
    on_refused: Callable[[str], None],
    ssl_context: ssl.SSLContext | None = None,
    on_listening: OnListening | None = None,
) -> WebhookListener | None:
    """Serve the webhook app on ``address`` (HOST:PORT) with the scrape port's connection limits (its
    own ``max_connections`` of them); None, logged, when it cannot listen. ``on_listening`` is told its URL."""
    host, port = parse_listen(address, "--web.webhook-address")
    guard = ConnectionGuard(max_connections, on_refused=on_refused)
    runner = web.AppRunner(
        make_webhook_app(sink, guard), access_log=None, handle_signals=False, keepalive_timeout=KEEPALIVE_TIMEOUT
    )
    await runner.setup()
    try:
        server, bound = await listen(runner, guard, host, port, ssl_context)
    except OSError as exc:
        log.error("cannot listen for webhooks", listen=address, error=exc.strerror)
        await runner.cleanup()
        return None
    shown = (
        "127.0.0.1"
        if bound[0] in ("0.0.0.0", "")
        else "[::1]"
        if bound[0] == "::"
        else (f"[{bound[0]}]" if ":" in bound[0] else bound[0])
    )
    listener = WebhookListener(runner, server, f"{'https' if ssl_context else 'http'}://{shown}:{bound[1]}")
    log.info("listening for webhooks", url=listener.url + "/webhooks/kapso/<source>")
    if on_listening is not None:
        on_listening(listener.url)
    return listener
