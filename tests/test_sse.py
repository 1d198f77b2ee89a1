"""read/sse.py: server-sent events decoded as the WHATWG standard says, however the bytes are cut: line
ends of every kind, data lines joined, comments, a blank line dispatching, a frame cut off never
dispatched, and a frame past the cap refused."""

from __future__ import annotations

import pytest

from agent_session_exporter.read.sse import FrameTooLarge, SseDecoder, SseEvent

STREAM = (
    b": keepalive\n\n"
    b'data: {"type": "connected"}\n\n'
    b"event: update\r\ndata: first\r\ndata:second\r\n\r\n"
    b"data: cr only\rid: 7\rretry: 10\r\r"
    b"data\n\n"
    b"data: \xe2\x82\xac and \xff\n\n"
)
EXPECTED = [
    SseEvent(None, comment="keepalive"),
    SseEvent('{"type": "connected"}'),
    SseEvent("first\nsecond", "update"),
    SseEvent("cr only"),
    SseEvent(""),
    SseEvent("\u20ac and \ufffd"),
]


def decode(chunks: list[bytes], max_frame: int = 1024) -> list[SseEvent]:
    decoder = SseDecoder(max_frame)
    return [event for chunk in chunks for event in decoder.feed(chunk)]


def test_a_stream_in_one_chunk():
    assert decode([STREAM]) == EXPECTED


@pytest.mark.parametrize("size", [1, 2, 3, 5, 7, 13])
def test_a_stream_cut_anywhere_reads_the_same(size):
    """Mid-line, mid-character, between a CR and its LF: the chunks' boundaries change nothing."""
    assert decode([STREAM[i : i + size] for i in range(0, len(STREAM), size)]) == EXPECTED


def test_a_cr_at_the_end_of_a_chunk_and_its_lf_in_the_next_end_one_line():
    assert decode([b"data: a\r", b"\n", b"\r", b"\ndata: b\n\n"]) == [SseEvent("a"), SseEvent("b")]


def test_a_frame_cut_off_by_the_end_of_the_stream_is_never_dispatched():
    decoder = SseDecoder(1024)
    assert decoder.feed(b'data: {"type": "event", "event_type": "SessionCompl') == []
    assert decoder.feed(b'eted"}\n') == []  # no blank line yet: the stream may end here


def test_a_byte_order_mark_is_dropped_at_the_start_only():
    assert decode([b"\xef\xbb\xbfdata: x\n\n", b"\xef\xbb\xbfdata: y\n\ndata: z\n\n"]) == [SseEvent("x"), SseEvent("z")]


def test_a_frame_over_the_cap_is_refused_whether_one_line_or_many():
    with pytest.raises(FrameTooLarge):
        decode([b"data: " + b"x" * 100], max_frame=64)  # a line that never ends
    with pytest.raises(FrameTooLarge):
        decode([b"data: 0123456789\n" * 10], max_frame=64)  # lines that never dispatch
    assert decode([b"data: 0123456789\n\n" * 10], max_frame=64) == [SseEvent("0123456789")] * 10
