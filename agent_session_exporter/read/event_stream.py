"""One connection to an upstream's event stream: a GET with the source's credentials, read chunk by
chunk through the SSE decoder (``read/sse.py``) until it ends, and why it ended (StreamEnded).

The answer's headers must come within the source's ``timeout``; after them, a stream silent for
``silence`` seconds (no byte at all, keepalive comments included) is taken as dead. The whole-body
cap of ``max_response_bytes`` means nothing for an endless body: each frame is capped instead.
Messages name the host, the path and the status, never a header or a credential.
"""

from __future__ import annotations

import asyncio
from typing import Callable, NoReturn

import aiohttp

from agent_session_exporter.read.http_client import connection_problem
from agent_session_exporter.read.sse import FrameTooLarge, SseDecoder, SseEvent

#: Why a connection ended (a label value).
END_REASONS = (
    "silent",  # no byte within the silence timeout: the connection is taken as dead
    "closed",  # the upstream ended the stream, or the connection dropped while open
    "connection",  # no connection, or no answer's headers within the source's timeout
    "http",  # answered, but not 200 with text/event-stream (a 404, a 5xx, a redirect, a proxy's page)
    "auth",  # 401 or 403: the credentials were refused
    "oversized",  # a frame over the cap
    "error",  # the exporter's own error while reading it (a bug: logged with its traceback)
)


class StreamEnded(Exception):
    """Why a connection to the stream ended: ``reason`` (one of END_REASONS) and a message saying more."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


async def read_stream(
    session: aiohttp.ClientSession,
    url: str,
    path: str,
    headers: dict[str, str],
    *,
    connect_timeout: float,
    silence: float,
    max_frame: int,
    opened: Callable[[], None],
    received: Callable[[SseEvent], None],
) -> NoReturn:
    """Connect to ``url`` and hand each event and comment to ``received`` (``opened`` first, once the
    stream is answered) until it ends: always by StreamEnded (or the caller's cancellation)."""
    what = f"GET {path}"
    is_open = False
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(connect_timeout) as deadline:
            async with session.get(
                url,
                headers={**headers, "Accept": "text/event-stream"},
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=None),
            ) as response:
                if response.status in (401, 403):
                    raise StreamEnded("auth", f"{what}: HTTP {response.status}: the credentials were refused")
                if response.status != 200 or response.content_type != "text/event-stream":
                    kind = response.content_type or "no content type"
                    raise StreamEnded("http", f"{what}: HTTP {response.status} ({kind}), not an event stream")
                is_open = True
                opened()
                decoder = SseDecoder(max_frame)
                while True:
                    deadline.reschedule(loop.time() + silence)
                    chunk = await response.content.readany()
                    if not chunk:
                        raise StreamEnded("closed", f"{what}: the upstream ended the stream")
                    for event in decoder.feed(chunk):
                        received(event)
    except TimeoutError:
        if is_open:
            raise StreamEnded("silent", f"{what}: silent for {silence:g}s") from None
        raise StreamEnded("connection", f"{what}: no answer within {connect_timeout:g}s") from None
    except FrameTooLarge as exc:
        raise StreamEnded("oversized", f"{what}: {exc}") from None
    except aiohttp.ClientError as exc:
        if is_open:
            raise StreamEnded("closed", f"{what}: the connection dropped ({type(exc).__name__})") from None
        raise StreamEnded("connection", f"{what}: {connection_problem(exc, url)}") from None
