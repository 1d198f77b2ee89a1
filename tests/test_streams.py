"""streams.py: a source reading Syntropic137's activity feed (``push: sse``) looks each ended session up
at once, through the webhooks' queue and lookup-only cycle, and counts it once whichever of stream and
poll comes first; a stream that stalls, drops, sends garbage or is refused reconnects with backoff and
never counts anything itself; what it misses, the next poll counts."""

from __future__ import annotations

import asyncio
import dataclasses
import random

import pytest
from aiohttp import web

from agent_session_exporter import pushes, streams
from agent_session_exporter.demo.syntropic137 import frame, session_completed
from agent_session_exporter.read.syntropic137_activity import Frame, read_frame
from agent_session_exporter.streams import StreamTiming, reconnect_delay

from .streamstack import FAST, stream_stack


@pytest.fixture
async def stack(clock):
    async with stream_stack(clock) as stack:
        assert await stack.poller.run_cycle()
        yield stack


async def test_a_session_is_counted_as_the_stream_says_it_ended(stack):
    session = stack.session()
    async with stack.streaming(), stack.serving():
        await stack.listening()
        assert stack.frames("connected", "ignored") == 1
        stack.tick(2)  # it ends: the feed says so
        await stack.until(lambda: stack.counted() == 1)
    assert stack.frames("session_completed", "accepted") == 1 and stack.lookups() == 1 and stack.observed() == 1
    assert stack.reconnects() == 0 and session.id in stack.poller.state.counted
    assert await stack.poller.run_cycle()  # the poll reads it again: counted once
    assert stack.counted() == 1 and stack.connected() == 0  # the stream stopped with its block


async def test_a_stalled_stream_is_dead_after_the_silence_and_reconnects(stack):
    stack.feed.keepalive = 60.0  # the feed says nothing, not even a keepalive
    async with stack.streaming(), stack.serving():
        await stack.listening()
        await stack.until(lambda: stack.reconnects("silent") >= 1)
        stack.feed.keepalive = 0.05  # from the next connection on, keepalives keep it alive
        await stack.until(lambda: stack.frames("keepalive", "ignored") >= 3 and stack.connected() == 1)
        stack.session()
        stack.tick(2)
        await stack.until(lambda: stack.counted() == 1)
    assert stack.reconnects() == stack.reconnects("silent") and stack.feed.connections >= 2


async def test_garbage_is_counted_malformed_logged_once_and_the_stream_goes_on(stack, logs):
    async with stack.streaming(), stack.serving():
        await stack.listening()
        for raw in (
            b"data: not json\n\n",
            b"data: [1, 2]\n\n",
            b"\xff\xfe\x00 garbage\ndata: {\n\n",
            frame("SessionCompleted", {"status": "failed"}),
            frame("SessionCompleted", {"session_id": ""}),
            b"retry: 1\nid: 9\nevent: x\n\n",  # no data: nothing dispatched
            frame("OperationRecorded", {"session_id": "s-1"}),
            frame("Session\nCompleted", {"session_id": "s"}),
        ):
            stack.feed.send(raw)
        await stack.until(lambda: stack.frames("other", "malformed") == 3 and stack.frames("other", "ignored") == 2)
        assert stack.frames("session_completed", "malformed") == 2
        stack.session()
        stack.tick(2)
        await stack.until(lambda: stack.counted() == 1)
    assert stack.reconnects() == 0 and stack.feed.connections == 1 and stack.lookups() == 1
    warned = [line for line in logs("warning") if "malformed frame" in line["msg"]]
    assert len(warned) == 1 and warned[0]["source"] == "st"


async def test_a_frame_split_mid_line_reads_as_one(stack):
    session = stack.session()
    stack.factory.on_status = None  # the test writes the frame itself
    stack.tick(2)
    whole = session_completed(session).replace(b"\n", b"\r\n")
    async with stack.streaming(), stack.serving():
        await stack.listening()
        # mid-key, mid-value, between a CR and its LF; the last part is the blank line that dispatches
        cut = [whole[:17], whole[17 : len(whole) // 2], whole[len(whole) // 2 : -3], whole[-3:-2], whole[-2:]]
        for part in cut[:-1]:
            stack.feed.send(part)
            await asyncio.sleep(0.05)  # each part its own write: nothing is dispatched from a part
            assert stack.frames("session_completed", "accepted") == 0 and stack.frames("other", "malformed") == 0
        stack.feed.send(cut[-1])
        await stack.until(lambda: stack.counted() == 1)
    assert stack.frames("session_completed", "accepted") == 1


async def test_a_frame_for_a_session_the_list_never_shows_counts_nothing(clock):
    async with stream_stack(clock, workflow_id="wf-1") as stack:  # the source polls one workflow
        assert await stack.poller.run_cycle()
        elsewhere = stack.session(workflow="wf-2")
        async with stack.streaming(), stack.serving():
            await stack.listening()
            stack.tick(2)  # it ends: the feed names every workflow's sessions
            stack.feed.send(frame("SessionCompleted", {"session_id": "no-such-session"}))
            await stack.until(lambda: stack.lookups() == 2 and len(stack.queue) == 0)
        assert stack.frames("session_completed", "accepted") == 2
        for _ in range(2):
            stack.tick(30)
            assert await stack.poller.run_cycle()
        assert stack.counted() == 0 and elsewhere.id not in stack.poller.state.counted
        assert stack.poller.state.pending == {} and stack.observed() == 0


@pytest.mark.parametrize("abort", [False, True], ids=["ended", "cut"])
async def test_a_stream_that_drops_mid_frame_discards_it_and_reconnects(stack, abort):
    session = stack.session()
    stack.factory.on_status = None
    stack.tick(2)
    whole = session_completed(session)
    async with stack.streaming(), stack.serving():
        await stack.listening()
        stack.feed.send(whole[:-10])
        stack.feed.drop(abort=abort)
        await stack.listening(connections=2)
        assert stack.reconnects("closed") == 1 and stack.counted() == 0
        assert stack.frames("session_completed", "accepted") == 0 and stack.frames("other", "malformed") == 0
        stack.feed.send(whole)  # said again on the new connection
        await stack.until(lambda: stack.counted() == 1)


async def test_events_missed_while_reconnecting_are_counted_by_the_next_poll(stack):
    async with stack.streaming(), stack.serving():
        await stack.listening()
        stack.feed.refuse = 503
        stack.feed.drop()
        await stack.until(lambda: stack.reconnects("http") >= 1)
        missed = stack.session()
        stack.tick(2)  # it ends while nobody listens: no replay
        stack.feed.refuse = None
        await stack.listening(connections=2)
        assert stack.counted() == 0 and stack.frames("session_completed", "accepted") == 0
    assert await stack.poller.run_cycle()
    assert stack.counted() == 1 and missed.id in stack.poller.state.counted and stack.lookups() == 0


async def test_stream_and_poll_racing_for_one_session_count_it_once(stack):
    """The frame arrives while a poll reads the list: its lookup waits for the poll, which counts the
    session, and is then dropped unread. Then the other order: the lookup first, the poll after."""
    entered, release = asyncio.Event(), asyncio.Event()

    async def slow(request: web.Request) -> None:
        entered.set()
        await release.wait()
        return None  # then answered as usual

    first = stack.session()
    async with stack.streaming():
        await stack.listening()
        stack.simulators.faults["syntropic137"] = slow
        stack.tick(2)  # ends: the frame is sent at once
        poll = asyncio.create_task(stack.poller.run_cycle())
        await asyncio.wait_for(entered.wait(), 10)
        await stack.until(lambda: len(stack.queue) == 1)  # the hint, mid-poll
        del stack.simulators.faults["syntropic137"]
        release.set()
        assert await asyncio.wait_for(poll, 10)
        assert stack.counted() == 1 and first.id in stack.poller.state.counted
        async with stack.serving():
            await stack.until(lambda: len(stack.queue) == 0)
        assert stack.lookups() == 0 and stack.observed() == 0
        second = stack.session()
        async with stack.serving():
            stack.tick(2)
            await stack.until(lambda: stack.counted() == 2)
        assert await stack.poller.run_cycle() and await stack.poller.run_cycle()
    assert stack.counted() == 2 and stack.lookups() == 1 and second.id in stack.poller.state.counted


async def test_refused_credentials_back_off_are_logged_once_and_never_shown(clock, logs):
    key = "syn-gateway-key-0123456789abcdef"
    slow_auth = dataclasses.replace(FAST, auth_backoff=0.1)
    async with stream_stack(clock, timing=slow_auth, api_key=key) as stack:
        stack.feed.refuse = 401
        async with stack.streaming():
            await stack.until(lambda: stack.reconnects("auth") >= 3)
            assert stack.connected() == 0 and stack.feed.authorization == f"Bearer {key}"
            stack.feed.refuse = None
            await stack.listening()
        assert stack.reconnects() == stack.reconnects("auth")
    warned = [line for line in logs("warning") if "activity stream" in line["msg"]]
    assert [line["reason"] for line in warned] == ["auth"] and "HTTP 401" in warned[0]["error"]
    assert [line["after"] for line in logs("info") if line["msg"] == "the activity stream is connected again"] == ["auth"]
    assert all(key not in str(line) for line in logs())


async def test_an_oversized_frame_is_counted_and_the_stream_reconnects(stack):
    async with stack.streaming(), stack.serving():
        await stack.listening()
        stack.feed.send(b"data: " + b"x" * (1024 * 1024 + 1) + b"\n\n")
        await stack.listening(connections=2)
        assert stack.reconnects("oversized") == 1 and stack.frames("other", "oversized") == 1
        stack.session()
        stack.tick(2)
        await stack.until(lambda: stack.counted() == 1)


async def test_an_error_of_the_exporters_own_is_logged_and_the_stream_goes_on(stack, logs, monkeypatch):
    calls = []

    def broken_once(data: str) -> Frame:
        calls.append(data)
        if len(calls) == 1:
            raise RuntimeError("a bug")
        return read_frame(data)

    monkeypatch.setattr(streams, "read_frame", broken_once)
    async with stack.streaming(), stack.serving():
        await stack.listening(connections=2)  # the handshake broke the first connection
        stack.session()
        stack.tick(2)
        await stack.until(lambda: stack.counted() == 1)
    assert stack.reconnects("error") == 1
    errors = [line for line in logs("error") if "activity stream" in line["msg"]]
    assert len(errors) == 1 and "RuntimeError: a bug" in errors[0]["error"] and "Traceback" in errors[0]["exception"]


async def test_shutdown_while_connected_ends_the_stream_at_once(clock):
    async with stream_stack(clock) as stack:
        stack.exporter.start()  # the polling loop, and the stream beside it
        await stack.listening()
        await asyncio.wait_for(stack.exporter.close(grace=5), 5)
        assert stack.connected() == 0 and not stack.exporter._tasks
        await stack.until(lambda: not stack.feed.subscribers)  # the feed saw its connection close


async def test_a_reload_that_turns_the_stream_off_ends_it_and_its_series(clock):
    async with stream_stack(clock) as stack:
        stack.exporter.start()
        await stack.listening()
        source = stack.exporter.config.sources[0].model_copy(update={"push": None})
        await stack.exporter.reload(stack.exporter.config.model_copy(update={"sources": (source,)}))
        await stack.until(lambda: not stack.feed.subscribers and stack.exporter.pollers["st"].cycles >= 1)
        assert "st" not in stack.exporter.pushes.streams
        assert not any(name.startswith("agent_session_exporter_push_") for name, _ in stack.samples())


def test_reconnects_back_off_exponentially_with_full_jitter_capped():
    timing = StreamTiming()  # 1 s doubling to 60 s; 5 minutes after 401/403
    rng = random.Random(3)
    for attempt, ceiling in ((0, 1.0), (1, 2.0), (3, 8.0), (5, 32.0), (6, 60.0), (1000, 60.0)):
        delays = [reconnect_delay(attempt, "closed", timing, rng) for _ in range(300)]
        assert all(0 <= d <= ceiling for d in delays) and max(delays) > ceiling * 0.9 and min(delays) < ceiling * 0.1
    assert reconnect_delay(0, "auth", timing, rng) == reconnect_delay(9, "auth", timing, rng) == 300.0


@pytest.mark.parametrize(("lagging", "by_lookup"), [(2, True), (9, False)], ids=["catches-up", "lags-on"])
async def test_a_lookup_that_still_reads_the_session_running_looks_again(stack, monkeypatch, lagging, by_lookup):
    """Syntropic137's session list is a projection apart from its feed: the frame may come first. The
    session is looked up again (twice, here 50 and 100 ms later), and then left to the next poll."""
    monkeypatch.setattr(pushes, "RELOOK_AFTER", (0.05, 0.1))
    session = stack.session()
    left = [lagging]

    def lag(payload: object) -> object:
        if isinstance(payload, dict) and payload.get("id") == session.id and left[0]:  # the lookup's answer
            left[0] -= 1
            return {**payload, "status": "running", "completed_at": None, "duration_seconds": None}
        return payload

    stack.simulators.mutators["syntropic137"] = lag
    async with stack.streaming(), stack.serving():
        await stack.listening()
        stack.tick(2)
        await stack.until(lambda: stack.lookups() == 3)
        await asyncio.sleep(0.3)  # a fourth lookup would be due by now: there is none
    assert stack.lookups() == 3 and stack.counted() == (1 if by_lookup else 0) and stack.observed() == stack.counted()
    assert await stack.poller.run_cycle()
    assert stack.counted() == 1 and stack.lookups() == 3
