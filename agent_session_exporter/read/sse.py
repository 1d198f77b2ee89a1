"""Server-sent events, decoded as the WHATWG HTML standard's "event stream interpretation" says:
UTF-8 (invalid bytes replaced), lines ended by ``\\r\\n``, ``\\n`` or ``\\r``, a line starting with
``:`` a comment, ``field: value`` (one space after the colon dropped), ``data`` lines joined with
``\\n``, and a blank line dispatching the event (none when it holds no data). A frame cut off by the
end of the stream is never dispatched. ``id`` and ``retry`` are not kept: the streams read here
have no replay, and reconnection has its own backoff (``streams.py``).

The decoder is fed the bytes as they arrive, in chunks cut anywhere (mid-line, between ``\\r`` and
``\\n``); a frame (its pending line and its data so far) longer than ``max_frame`` bytes raises
FrameTooLarge, so an endless line or frame cannot grow the buffer unbounded.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SseEvent:
    """One dispatched event (its ``data``), or one comment line (``comment``; ``data`` None)."""

    data: str | None
    event: str = "message"
    comment: str | None = None


class FrameTooLarge(ValueError):
    """A frame longer than the decoder's ``max_frame`` bytes."""


class SseDecoder:
    def __init__(self, max_frame: int) -> None:
        self.max_frame = max_frame
        self._line = bytearray()
        self._data: list[str] = []
        self._size = 0  # bytes of the frame's lines so far
        self._event = ""
        self._after_cr = False  # the last byte fed was a CR: a LF right after it ends no second line
        self._started = False  # past the stream's first line (where a byte order mark is dropped)

    def feed(self, chunk: bytes) -> list[SseEvent]:
        """The events and comments ``chunk`` completes, in order; FrameTooLarge past ``max_frame``."""
        out: list[SseEvent] = []
        start = 0
        if self._after_cr and chunk[:1] == b"\n":
            start = 1
        self._after_cr = False
        end = len(chunk)
        while start < end:
            cr, lf = chunk.find(b"\r", start), chunk.find(b"\n", start)
            stop = min(i for i in (cr, lf) if i >= 0) if cr >= 0 or lf >= 0 else -1
            if stop < 0:
                self._line += chunk[start:]
                break
            self._line += chunk[start:stop]
            self._check(len(self._line))
            self._take(bytes(self._line), out)
            self._line.clear()
            start = stop + 1
            if chunk[stop] == 13:  # CR: a LF right after it belongs to it (perhaps in the next chunk)
                if start < end and chunk[start] == 10:
                    start += 1
                elif start == end:
                    self._after_cr = True
        self._check(len(self._line))
        return out

    def _check(self, pending: int) -> None:
        if self._size + pending > self.max_frame:
            raise FrameTooLarge(f"a frame over {self.max_frame} bytes")

    def _take(self, raw: bytes, out: list[SseEvent]) -> None:
        line = raw.decode("utf-8", "replace")
        if not self._started:
            self._started, line = True, line.removeprefix("\ufeff")
        if not line:  # a blank line dispatches
            if self._data:
                out.append(SseEvent("\n".join(self._data), self._event or "message"))
            self._data, self._event, self._size = [], "", 0
            return
        self._size += len(raw) + 1
        if line.startswith(":"):
            out.append(SseEvent(None, comment=line[1:].removeprefix(" ")))
            return
        name, colon, value = line.partition(":")
        if colon:
            value = value.removeprefix(" ")
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
