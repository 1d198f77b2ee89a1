"""No source's polling task dies silently (issue row 3): a fault in any step a cycle takes after the
poll is logged, marks the source down, and the task is restarted with backoff; counting goes on,
each session once."""

from __future__ import annotations

import asyncio
from typing import Any, Callable

import pytest

from agent_session_exporter.app import Exporter
from agent_session_exporter.demo.runner import demo_config, running_simulators
from agent_session_exporter.demo.server import Simulators
from agent_session_exporter.poller import SourcePoller

from .helpers import parse_exposition, total_of

SOURCE = "demo-syntropic"
#: Each step after the poll: the object and the name of the method that fails once.
STEPS: dict[str, Callable[[Exporter, SourcePoller], tuple[Any, str]]] = {
    "render (on_change)": lambda exporter, poller: (exporter.exposition, "source_changed"),
    "cycle duration": lambda exporter, poller: (poller.metrics, "cycle_took"),
    "gauges": lambda exporter, poller: (poller.metrics, "tracked"),
    "exemplars and failures": lambda exporter, poller: (poller, "_note_sessions"),
    "reporting": lambda exporter, poller: (poller, "_report"),
    "cycle lag (the loop)": lambda exporter, poller: (poller.metrics, "cycle_lag"),
}


def fail_once(owner: Any, name: str) -> None:
    original = getattr(owner, name)
    calls = {"n": 0}

    def faulty(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError(f"injected fault in {name}")
        return original(*args, **kwargs)

    setattr(owner, name, faulty)


def after(owner: Any, name: str, then: Callable[[Any], None]) -> None:
    """Call ``then`` with the result of every call of ``owner.name`` (sync or async)."""
    original = getattr(owner, name)
    if asyncio.iscoroutinefunction(original):

        async def wrapped_async(*args: Any, **kwargs: Any) -> Any:
            result = await original(*args, **kwargs)
            then(result)
            return result

        setattr(owner, name, wrapped_async)
    else:

        def wrapped(*args: Any, **kwargs: Any) -> Any:
            result = original(*args, **kwargs)
            then(result)
            return result

        setattr(owner, name, wrapped)


@pytest.mark.parametrize("step", STEPS)
async def test_a_fault_after_the_poll_restarts_the_task_with_the_source_down_meanwhile(clock, logs, step):
    simulators = Simulators(clock=clock)
    simulators.backfill(600)
    async with running_simulators(simulators, tick_every=None) as base_url:
        config = demo_config(base_url, listen="127.0.0.1:0", interval=1)
        config = config.model_copy(update={"sources": [s for s in config.sources if s.name == SOURCE]})
        exporter = Exporter(config, clock=clock, restart_backoff=0.01)
        await exporter.open()
        poller = exporter.pollers[SOURCE]
        owner, name = STEPS[step](exporter, poller)
        fail_once(owner, name)
        restarted, cycled = asyncio.Event(), asyncio.Event()
        after(poller.metrics, "task_restarted", lambda _: restarted.set())
        after(poller, "run_cycle", lambda ok: cycled.set() if ok and restarted.is_set() else None)
        exporter.start()
        try:
            await asyncio.wait_for(restarted.wait(), 20)  # a bound, never a wait for time to pass
            down = parse_exposition(exporter.render_metrics().decode())
            simulators.finish_all()  # sessions end while the task is down: the restarted one counts them
            clock.advance(15)
            truth = sum(simulators.factories["syntropic137"].truth.finished.values())
            for _ in range(5):  # bounded: each further cycle waits an interval
                await asyncio.wait_for(cycled.wait(), 20)
                cycled.clear()
                up = parse_exposition(exporter.render_metrics().decode())
                if total_of(up, "agent_sessions_finished_total") >= truth:
                    break
        finally:
            await exporter.close()
    assert total_of(down, "agent_session_exporter_source_up", source=SOURCE) == 0
    assert total_of(down, "agent_session_exporter_source_task_restarts_total", source=SOURCE) == 1
    assert total_of(up, "agent_session_exporter_source_up", source=SOURCE) == 1
    assert total_of(up, "agent_sessions_finished_total", source=SOURCE) == truth > 100
    assert total_of(up, "agent_session_exporter_source_task_restarts_total", source=SOURCE) == 1
    errors = logs("error")
    assert any(f"injected fault in {name}" in line.get("error", "") for line in errors)
    assert any(line["msg"].startswith("the source's polling task ended") and line.get("source") == SOURCE for line in errors)
