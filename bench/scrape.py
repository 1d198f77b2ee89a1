"""Scrape latency: 1,000 scrapes of /metrics from another process while collection cycles run,
with the event loop's lag measured inside the exporter; and the cost of an unchanged scrape."""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import time

from aiohttp import web
from common import sim_server

from agent_session_exporter.app import Exporter
from agent_session_exporter.demo.runner import demo_config
from agent_session_exporter.serve.server import make_app

SCRAPER = r"""
import http.client, json, sys, time
host, port, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
conn = http.client.HTTPConnection(host, port, timeout=10)
latencies = []
for _ in range(count):
    started = time.perf_counter()
    conn.request("GET", "/metrics")
    body = conn.getresponse().read()
    latencies.append((time.perf_counter() - started) * 1000)
print(json.dumps(latencies))
"""


class StepClock:
    """The CPU time of each step of the event loop (each callback it runs), while ``on``: what a cycle
    or a scrape holds the loop for, whatever else the machine runs meanwhile (the wall-clock lag above
    also counts the time the OS gives other processes)."""

    def __init__(self) -> None:
        self.longest = 0.0
        self.original = asyncio.events.Handle._run

    def __enter__(self) -> StepClock:
        original, clock = self.original, self

        def timed(handle: asyncio.events.Handle) -> None:
            started = time.thread_time()
            original(handle)
            clock.longest = max(clock.longest, time.thread_time() - started)

        asyncio.events.Handle._run = timed  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.events.Handle._run = self.original  # type: ignore[method-assign]


async def measure(base_url: str, scrapes: int) -> dict[str, float]:
    exporter = Exporter(demo_config(base_url, listen="127.0.0.1:0", interval=1))
    await exporter.open()
    await exporter.run_once()
    runner = web.AppRunner(make_app(exporter), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    lags: list[float] = []
    stop = asyncio.Event()

    async def lag_monitor() -> None:
        while not stop.is_set():
            started = time.perf_counter()
            await asyncio.sleep(0.005)
            lags.append((time.perf_counter() - started - 0.005) * 1000)

    monitor = asyncio.create_task(lag_monitor())
    cycles_before = sum(
        c.metrics.m.collect_duration.labels(*c.metrics.labels)._sum.get()  # noqa: SLF001
        for c in exporter.pollers.values()
    )
    exporter.start()
    steps = StepClock()
    try:
        with steps:
            scraper = await asyncio.create_subprocess_exec(
                sys.executable, "-c", SCRAPER, host, str(port), str(scrapes), stdout=asyncio.subprocess.PIPE
            )
            out, _ = await scraper.communicate()
        latencies = sorted(json.loads(out))
        cycles_busy = (
            sum(
                c.metrics.m.collect_duration.labels(*c.metrics.labels)._sum.get()  # noqa: SLF001
                for c in exporter.pollers.values()
            )
            - cycles_before
        )
        stop.set()  # the timing loops below block the loop on purpose: stop measuring its lag first
        await monitor
        exposition = exporter.render_metrics().decode()
        started = time.perf_counter()
        for _ in range(1000):
            exporter.render_metrics()
        unchanged_us = (time.perf_counter() - started) * 1000
        exporter._changed()  # noqa: SLF001 - force one full render, as after a cycle
        started = time.perf_counter()
        exporter.render_metrics()
        full_render_ms = (time.perf_counter() - started) * 1000
    finally:
        stop.set()
        await asyncio.gather(monitor, return_exceptions=True)
        await runner.cleanup()
        await exporter.close()
    series = sum(1 for line in exposition.splitlines() if line and not line.startswith("#"))
    return {
        "series": series,
        "scrapes": len(latencies),
        "p50_ms": statistics.median(latencies),
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1],
        "max_ms": latencies[-1],
        "max_loop_lag_ms": max(lags),
        "longest_step_cpu_ms": steps.longest * 1000,
        "cycle_seconds_during_run": cycles_busy,
        "unchanged_scrape_us": unchanged_us,
        "full_render_ms": full_render_ms,
    }


def run(scrapes: int = 1000, backfill: float = 1800) -> dict[str, float]:
    with sim_server(rate=2.0, backfill=backfill) as base_url:
        return asyncio.run(measure(base_url, scrapes))


if __name__ == "__main__":
    for key, value in run().items():
        print(f"{key:28s} {value:,.2f}")
