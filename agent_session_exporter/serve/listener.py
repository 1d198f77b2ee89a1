"""The listening socket, with the limits a port open to a network needs.

aiohttp's server has none of these: a client that connects and never sends a request holds its
socket for good, and enough of them exhaust the file descriptors (then ``/healthz`` itself times
out). Here each connection is a thin protocol around aiohttp's own handler that

- refuses connections past ``max_connections`` (closed at once, counted);
- closes a connection whose first request has not arrived within ``header_timeout``;
- gives TLS handshakes ``handshake_timeout``;

and aiohttp closes keep-alive connections idle for ``keepalive_timeout`` (set on the runner).
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any, Awaitable, Callable

from aiohttp import web

DEFAULT_MAX_CONNECTIONS = 64
HEADER_TIMEOUT = 10.0
HANDSHAKE_TIMEOUT = 10.0
KEEPALIVE_TIMEOUT = 30.0


class ConnectionGuard:
    """Counts live connections and knows which have sent a request."""

    def __init__(self, max_connections: int = DEFAULT_MAX_CONNECTIONS, header_timeout: float = HEADER_TIMEOUT,
                 on_refused: Callable[[str], None] = lambda reason: None) -> None:
        self.max_connections = max_connections
        self.header_timeout = header_timeout
        self.on_refused = on_refused
        self.live: set[asyncio.BaseTransport] = set()
        self.served: set[asyncio.BaseTransport] = set()

    @web.middleware
    async def middleware(self, request: web.Request,
                         handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        if request.transport is not None:
            self.served.add(request.transport)
        return await handler(request)

    def protocol_factory(self, inner_factory: Callable[[], asyncio.Protocol]) -> Callable[[], asyncio.Protocol]:
        return lambda: _GuardedProtocol(inner_factory(), self)


class _GuardedProtocol(asyncio.Protocol):
    """Delegates to aiohttp's handler, after admission, until the first request or the timeout."""

    def __init__(self, inner: asyncio.Protocol, guard: ConnectionGuard) -> None:
        self.inner = inner
        self.guard = guard
        self.transport: asyncio.BaseTransport | None = None
        self.admitted = False
        self.timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        guard = self.guard
        if len(guard.live) >= guard.max_connections:
            guard.on_refused("max_connections")
            transport.abort()
            return
        self.admitted = True
        guard.live.add(transport)
        self.inner.connection_made(transport)
        self.timer = asyncio.get_running_loop().call_later(guard.header_timeout, self._first_request_due)

    def _first_request_due(self) -> None:
        if self.transport is not None and self.transport not in self.guard.served:
            self.guard.on_refused("header_timeout")
            self.transport.abort()

    def data_received(self, data: bytes) -> None:
        if self.admitted:
            self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received() if self.admitted else None

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.timer is not None:
            self.timer.cancel()
        if not self.admitted:
            return
        self.guard.live.discard(self.transport)  # type: ignore[arg-type]
        self.guard.served.discard(self.transport)  # type: ignore[arg-type]
        self.inner.connection_lost(exc)


async def listen(runner: web.AppRunner, guard: ConnectionGuard, host: str, port: int,
                 ssl_context: ssl.SSLContext | None) -> tuple[asyncio.AbstractServer, tuple[Any, ...]]:
    """Start serving ``runner`` on (host, port) through ``guard``; return the server and its address."""
    assert runner.server is not None, "runner.setup() first"
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        guard.protocol_factory(runner.server), host or None, port, ssl=ssl_context, backlog=128,
        ssl_handshake_timeout=HANDSHAKE_TIMEOUT if ssl_context else None, reuse_address=True)
    return server, server.sockets[0].getsockname()
