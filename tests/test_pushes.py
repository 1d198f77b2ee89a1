"""pushes.py and lookup_cycle.py: a push's lookup and the polls meet on one state, one at a time, so
each execution counts once whichever comes first; a lost push is counted by the next poll; a lookup
moves no window; pushes cannot spend more lookups than the source allows."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from agent_session_exporter.demo.pushes import DEMO_WEBHOOK_SECRET, pushing
from agent_session_exporter.serve.webhooks import open_webhook_listener

from .pushstack import push_stack


@pytest.fixture
async def stack(clock):
    async with push_stack(clock) as stack:
        assert await stack.poller.run_cycle()
        yield stack


async def test_poll_first_then_push_counts_once_and_looks_nothing_up(stack):
    execution = stack.execution()
    stack.tick(2)
    assert await stack.poller.run_cycle()
    assert stack.counted() == 1
    async with stack.serving():
        assert await stack.push(execution) == (200, "ok\n")
        assert stack.pushes("accepted") == 1
        await stack.until(lambda: len(stack.queue) == 0)
    assert stack.counted() == 1 and stack.lookups() == 0


async def test_push_first_then_poll_counts_once(stack):
    execution = stack.execution()
    stack.tick(2)
    async with stack.serving():
        await stack.push(execution)
        await stack.until(lambda: stack.counted() == 1)
    assert await stack.poller.run_cycle()
    assert await stack.poller.run_cycle()
    assert stack.counted() == 1 and stack.lookups() == 1


async def test_a_push_arriving_during_a_poll_waits_for_it_and_is_then_not_looked_up(stack):
    execution = stack.execution()
    stack.tick(2)
    entered, release = asyncio.Event(), asyncio.Event()

    async def slow(request):
        entered.set()
        await release.wait()
        return None  # then answered as usual

    stack.simulators.faults["kapso"] = slow
    poll = asyncio.create_task(stack.poller.run_cycle())
    await asyncio.wait_for(entered.wait(), 10)
    assert await stack.push(execution) == (200, "ok\n")  # answered at once, mid-poll
    assert len(stack.queue) == 1 and stack.lookups() == 0
    release.set()
    assert await asyncio.wait_for(poll, 10)
    assert stack.counted() == 1
    async with stack.serving():
        await stack.until(lambda: len(stack.queue) == 0)
    assert stack.counted() == 1 and stack.lookups() == 0


async def test_a_lost_push_is_counted_by_the_next_poll(stack):
    execution = stack.execution()
    stack.tick(2)
    assert (await stack.push(execution, secret="a-wrong-secret-0123456789"))[0] == 401  # lost as good as
    assert stack.counted() == 0
    assert await stack.poller.run_cycle()
    assert stack.counted() == 1


async def test_a_lookup_moves_no_window_and_a_session_counted_ahead_of_it_makes_the_next_poll_sweep(stack):
    state, sweeps = stack.poller.state, stack.poller.reads.sweeps
    older = stack.execution(seconds_ago=30, duration=600)
    assert await stack.poller.run_cycle()
    watermark = state.watermark
    assert watermark == older.started_at and not sweeps.needed
    stack.clock.advance(120)
    newer = stack.execution(seconds_ago=10)
    stack.tick(5)
    async with stack.serving():
        await stack.push(newer)
        await stack.until(lambda: stack.counted() == 1)
    assert state.watermark == watermark and newer.id in state.counted and older.id in state.pending
    assert sweeps.needed
    assert await stack.poller.run_cycle()
    assert not sweeps.needed and state.watermark == newer.started_at and stack.counted() == 1


async def test_a_pending_execution_pushed_is_counted_by_its_lookup(stack):
    execution = stack.execution(duration=60)
    assert await stack.poller.run_cycle()
    assert execution.id in stack.poller.state.pending
    stack.tick(61)
    async with stack.serving():
        await stack.push(execution)
        await stack.until(lambda: stack.counted() == 1)
    assert execution.id not in stack.poller.state.pending and stack.lookups() == 1


async def test_pushes_spend_no_more_lookups_than_the_source_allows(clock):
    async with push_stack(clock, max_push_lookups_per_minute=6) as stack:  # one every 10 s, bursts of one
        assert await stack.poller.run_cycle()
        executions = [stack.execution(seconds_ago=5 + n) for n in range(20)]
        stack.tick(2)
        async with stack.serving():
            for execution in executions:
                await stack.push(execution)
            await stack.until(lambda: stack.counted() == 1)
            assert stack.lookups() == 1 and len(stack.queue) == 19
        assert await stack.poller.run_cycle()  # the poll counts the rest, at no lookup's cost
        assert stack.counted() == 20 and stack.lookups() == 1


async def test_a_failed_lookup_commits_nothing_and_the_next_poll_counts(stack, logs):
    execution = stack.execution()
    stack.tick(2)
    stack.simulators.faults["kapso"] = lambda request: aiohttp.web.Response(status=401)
    async with stack.serving():
        await stack.push(execution)
        await stack.until(lambda: any("pushes failed" in line["msg"] for line in logs("warning")))
    assert stack.counted() == 0
    del stack.simulators.faults["kapso"]
    assert await stack.poller.run_cycle()
    assert stack.counted() == 1


async def test_the_demos_simulated_webhooks_count_failures_between_polls(clock):
    async with push_stack(clock, webhook_secret=DEMO_WEBHOOK_SECRET) as stack:
        assert await stack.poller.run_cycle()
        listener = await open_webhook_listener(stack.exporter.pushes, "127.0.0.1:0", 8, stack.exporter.connection_refused)
        assert listener is not None
        try:
            async with pushing(stack.kapso) as pusher, stack.serving():
                pusher.push_to(listener.url, "ka")
                stack.execution()
                stack.tick(2)  # it fails: the simulator pushes
                await stack.until(lambda: stack.counted() == 1)
                assert pusher.sent == {"200": 1}
        finally:
            await listener.close()
        assert stack.pushes("accepted") == 1 and stack.lookups() == 1
