"""The listening socket, with the limits a port open to a network needs: every client costs a
bounded amount of the server's time, memory and connection slots.

aiohttp's server has none of these: a client that connects and never sends a request, or never
reads its answers, holds its socket for good, and enough of them exhaust the file descriptors
(then ``/healthz`` itself times out). Here each TCP connection, from its accept to its close, is a
thin protocol around aiohttp's own handler that

- counts the connection from the TCP accept, its TLS handshake included (so TLS is layered here,
  not by the event loop, which would show the connection only once the handshake is done);
- past ``max_connections``, admits ``reserve`` more connections that may ask one thing each:
  ``/healthz`` is answered, anything else gets a quick ``503``; past the reserve, a connection is
  closed at once;
- closes a connection whose first request has not arrived within ``header_timeout``, and gives TLS
  handshakes ``handshake_timeout``;
- drops a connection whose answer has waited ``write_timeout`` for the client to take it (the
  kernel's buffers full), whatever aiohttp is doing meanwhile: writing, idle, or closing;
- closes a connection, with the answer to it, once ``max_pipelined`` of its requests came before
  the answer to the request ahead of them (a pipelined flood gets a bounded number of answers);

reports each refusal through ``on_refused(reason)``, and logs accept() errors (out of file
descriptors) at most once a second (``serve/accept_errors.py``). aiohttp closes keep-alive connections idle for
``keepalive_timeout`` (set on the runner).
"""

from __future__ import annotations

import asyncio
import ssl
from asyncio import sslproto
from typing import Any, Awaitable, Callable

from aiohttp import web

from agent_session_exporter.serve.accept_errors import AcceptErrorLog

DEFAULT_MAX_CONNECTIONS = 64
#: Connections past the cap that may still ask for /healthz (or be told 503).
RESERVED_CONNECTIONS = 4
HEADER_TIMEOUT = 10.0
HANDSHAKE_TIMEOUT = 10.0
WRITE_TIMEOUT = 10.0
KEEPALIVE_TIMEOUT = 30.0
MAX_PIPELINED = 16
#: What a connection in the reserve may ask for; anything else is answered 503.
RESERVED_PATHS = frozenset({"/healthz"})


class ConnectionGuard:
    """Admits connections (within the cap, then into the reserve) and holds their limits; its
    middleware sees every request first."""

    def __init__(
        self,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        header_timeout: float = HEADER_TIMEOUT,
        on_refused: Callable[[str], None] = lambda reason: None,
        *,
        reserve: int = RESERVED_CONNECTIONS,
        handshake_timeout: float = HANDSHAKE_TIMEOUT,
        write_timeout: float = WRITE_TIMEOUT,
        max_pipelined: int = MAX_PIPELINED,
        reserved_paths: frozenset[str] = RESERVED_PATHS,
    ) -> None:
        self.max_connections = max_connections
        self.header_timeout = header_timeout
        self.on_refused = on_refused
        self.reserve = reserve
        self.handshake_timeout = handshake_timeout
        self.write_timeout = write_timeout
        self.max_pipelined = max_pipelined
        self.reserved_paths = reserved_paths
        self.live: set[_GuardedProtocol] = set()  # within the cap
        self.reserved: set[_GuardedProtocol] = set()  # past it, in the reserve
        self.by_transport: dict[asyncio.BaseTransport, _GuardedProtocol] = {}  # keyed by what aiohttp writes to

    def admit(self, connection: _GuardedProtocol) -> bool:
        if len(self.live) < self.max_connections:
            self.live.add(connection)
            return True
        if len(self.reserved) < self.reserve:
            connection.reserved = True
            self.reserved.add(connection)
            return True
        return False

    def release(self, connection: _GuardedProtocol) -> None:
        self.live.discard(connection)
        self.reserved.discard(connection)
        if connection.app_transport is not None:
            self.by_transport.pop(connection.app_transport, None)

    @web.middleware
    async def middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        connection = self.by_transport.get(request.transport) if request.transport is not None else None
        if connection is None:  # an app served some other way than through listen()
            return await handler(request)
        # No byte came since the last answer was made: this request was sent before the client had it.
        if connection.requests and not connection.fresh:
            connection.pipelined += 1
        connection.requests += 1
        if connection.reserved and request.path not in self.reserved_paths:
            self.on_refused("max_connections")
            busy = web.Response(
                status=503, text=f"Limit of concurrent connections reached ({self.max_connections}), try again later.\n"
            )
            busy.force_close()
            return busy
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            self._last_answer_if_due(connection, exc)
            raise
        finally:
            connection.fresh = False
        self._last_answer_if_due(connection, response)
        return response

    def _last_answer_if_due(self, connection: _GuardedProtocol, response: web.StreamResponse) -> None:
        """A connection in the reserve gets one answer; one that pipelined its share, this one."""
        if connection.reserved:
            response.force_close()
        elif connection.pipelined >= self.max_pipelined:
            self.on_refused("max_pipelined")
            response.force_close()

    def protocol_factory(
        self, inner_factory: Callable[[], asyncio.Protocol], ssl_context: ssl.SSLContext | None = None
    ) -> Callable[[], asyncio.Protocol]:
        return lambda: _GuardedProtocol(inner_factory(), self, ssl_context)


class _GuardedProtocol(asyncio.Protocol):
    """One TCP connection, from its accept to its close: admitted or closed at once, its timers, and
    its bytes handed to aiohttp's handler (through TLS when the listener has a context)."""

    def __init__(self, inner: asyncio.Protocol, guard: ConnectionGuard, ssl_context: ssl.SSLContext | None = None) -> None:
        self.inner = inner
        self.guard = guard
        self.ssl_context = ssl_context
        self.transport: asyncio.Transport | None = None  # the TCP connection
        self.app_transport: asyncio.BaseTransport | None = None  # what aiohttp writes to: that, or TLS over it
        self.layer: asyncio.Protocol | asyncio.BufferedProtocol | None = None  # where its events go: aiohttp, or TLS
        self.reserved = False
        self.requests = 0
        self.pipelined = 0
        self.fresh = False  # a byte came since the last answer was made
        self.header_timer: asyncio.TimerHandle | None = None
        self.write_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        if not self.guard.admit(self):
            self.guard.on_refused("max_connections")
            transport.abort()
            return
        # Output left in the process (what the kernel would not take) pauses the writer at its first
        # byte, so the write timeout runs exactly while the client is not taking its answer.
        transport.set_write_buffer_limits(high=0)
        if self.ssl_context is None:
            self.layer = self.inner
            self.app_connection_made(transport)
        else:
            # What loop.create_server(ssl=...) builds, built here so the TCP connection stays ours (and
            # counted) through the handshake. No waiter: the handshake's end shows in the callbacks.
            # (typeshed wants a waiter and an int timeout; asyncio takes None and a float.)
            waiter: Any = None
            timeout: Any = self.guard.handshake_timeout
            self.layer = sslproto.SSLProtocol(
                asyncio.get_running_loop(),
                _Decrypted(self),
                self.ssl_context,
                waiter,
                server_side=True,
                ssl_handshake_timeout=timeout,
            )
            self.layer.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self.layer is self.inner:
            self.app_data_received(data)
        elif isinstance(self.layer, asyncio.BufferedProtocol):
            _feed(self.layer, data, self.transport)

    def eof_received(self) -> bool | None:
        return self.layer.eof_received() if self.layer is not None else None

    def pause_writing(self) -> None:
        if self.layer is None:
            return
        if self.write_timer is None:
            self.write_timer = asyncio.get_running_loop().call_later(self.guard.write_timeout, self._write_due)
        self.layer.pause_writing()

    def resume_writing(self) -> None:
        if self.layer is None:
            return
        if self.write_timer is not None:
            self.write_timer.cancel()
            self.write_timer = None
        self.layer.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        for timer in (self.header_timer, self.write_timer):
            if timer is not None:
                timer.cancel()
        if self.layer is None:  # closed at once
            return
        self.guard.release(self)
        self.layer.connection_lost(exc)

    # The connection as aiohttp sees it: the TCP one, or TLS over it once the handshake is done.
    def app_connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.app_transport = transport
        self.guard.by_transport[transport] = self
        self.inner.connection_made(transport)
        self.header_timer = asyncio.get_running_loop().call_later(self.guard.header_timeout, self._first_request_due)

    def app_data_received(self, data: bytes) -> None:
        self.fresh = True
        self.inner.data_received(data)

    def _first_request_due(self) -> None:
        if self.requests == 0 and self.transport is not None:
            self.guard.on_refused("header_timeout")
            self.transport.abort()

    def _write_due(self) -> None:
        self.write_timer = None
        if self.transport is not None:
            self.guard.on_refused("write_timeout")
            self.transport.abort()


class _Decrypted(asyncio.Protocol):
    """The protocol TLS hands the decrypted connection to: the connection's own app side, then aiohttp."""

    def __init__(self, connection: _GuardedProtocol) -> None:
        self.connection = connection

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.connection.app_connection_made(transport)

    def data_received(self, data: bytes) -> None:
        self.connection.app_data_received(data)

    def eof_received(self) -> bool | None:
        return self.connection.inner.eof_received()

    def pause_writing(self) -> None:
        self.connection.inner.pause_writing()

    def resume_writing(self) -> None:
        self.connection.inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        self.connection.inner.connection_lost(exc)


def _feed(protocol: asyncio.BufferedProtocol, data: bytes, transport: asyncio.Transport | None) -> None:
    """Hand ``data`` to a buffered protocol (TLS) through its own buffers, as a transport would."""
    view = memoryview(data)
    while view and not (transport is None or transport.is_closing()):  # each pass hands over at least a byte
        buffer = memoryview(protocol.get_buffer(len(view)))
        size = min(len(buffer), len(view))
        if size == 0:
            raise RuntimeError("get_buffer() returned an empty buffer")
        buffer[:size] = view[:size]
        protocol.buffer_updated(size)
        view = view[size:]


async def listen(
    runner: web.AppRunner, guard: ConnectionGuard, host: str, port: int, ssl_context: ssl.SSLContext | None
) -> tuple[asyncio.AbstractServer, tuple[Any, ...]]:
    """Start serving ``runner`` on (host, port) through ``guard``; return the server and its address."""
    assert runner.server is not None, "runner.setup() first"
    loop = asyncio.get_running_loop()
    if not isinstance(loop.get_exception_handler(), AcceptErrorLog):
        loop.set_exception_handler(AcceptErrorLog(loop.get_exception_handler()))
    server = await loop.create_server(
        guard.protocol_factory(runner.server, ssl_context), host or None, port, backlog=128, reuse_address=True
    )
    return server, server.sockets[0].getsockname()
