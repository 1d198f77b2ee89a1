"""lookup_cycle.py reports through the source's SourceReporter, as a cycle does, but a lookup-only
cycle says nothing of the source's health: neither a failed lookup nor a counted one moves
source_up, the last success or the last result, and its requests are counted as kind "push"."""

from __future__ import annotations

from aiohttp import web

from .helpers import total_of
from .pushstack import push_stack


def health(stack) -> tuple[float, float, str]:
    samples = stack.samples()
    return (
        total_of(samples, "agent_session_exporter_source_up", source="ka"),
        total_of(samples, "agent_session_exporter_last_success_timestamp_seconds", source="ka"),
        stack.poller.last_result,
    )


async def test_a_lookup_cycle_moves_neither_source_up_nor_the_last_success(clock, logs):
    async with push_stack(clock) as stack:
        assert await stack.poller.run_cycle()
        before = health(stack)
        assert before[0] == 1 and before[2].startswith("ok")
        failing, counted = stack.execution(), stack.execution()
        stack.tick(2)
        clock.advance(30)
        stack.simulators.faults["kapso"] = lambda request: web.Response(status=401)
        async with stack.serving():
            await stack.push(failing)
            await stack.until(lambda: any("pushes failed" in line["msg"] for line in logs("warning")))
        assert health(stack) == before and stack.counted() == 0 and stack.lookups() == 1
        del stack.simulators.faults["kapso"]
        async with stack.serving():
            await stack.push(counted)
            await stack.until(lambda: stack.counted() == 1)
        assert health(stack) == before and stack.lookups() == 2
