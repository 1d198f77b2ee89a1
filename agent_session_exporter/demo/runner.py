"""``--demo``: the simulators on loopback, and a config that points one source at each."""

from __future__ import annotations

import asyncio
import contextlib
from typing import AsyncIterator

import structlog
from aiohttp import web

from agent_session_exporter.config import Config, parse_config
from agent_session_exporter.demo.pushes import DEMO_WEBHOOK_SECRET, KapsoPusher, pushing
from agent_session_exporter.demo.server import DEMO_KEYS, HONEYHIVE_PROJECT, PREFIXES, UI_PATHS, Simulators

log = structlog.get_logger()

#: The demo's sources and the simulator each polls (three read HoneyHive: its search, the default, and
#: the two older APIs, which say on the landing page and in the log that they are deprecated).
DEMO_SOURCES = {
    "demo-whatabot": "whatabot",
    "demo-dify": "dify",
    "demo-syntropic": "syntropic137",
    "demo-honeyhive": "honeyhive",
    "demo-honeyhive-events": "honeyhive",
    "demo-honeyhive-sessions": "honeyhive",
    "demo-kapso": "kapso",
    "demo-n8n": "n8n",
}


def demo_config(base_url: str, listen: str = "0.0.0.0:9817", interval: float = 5, kapso_interval: float | None = None) -> Config:
    """The demo's sources on the simulators at ``base_url``. The Kapso source takes the simulator's
    webhooks (``demo/pushes.py``), so it may poll at ``kapso_interval``, longer, and still count
    failures within seconds; the Syntropic137 source reads its simulator's activity feed
    (``push: sse``), each session looked up as the feed says it ended."""

    def source(name: str, provider: str, **extra: object) -> dict[str, object]:
        entry: dict[str, object] = {
            "name": name,
            "provider": provider,
            "base_url": base_url + PREFIXES[provider],
            "initial_lookback": "1h",
            "session_url": base_url + UI_PATHS[provider],
            **extra,
        }
        if provider != "syntropic137":
            entry["api_key"] = DEMO_KEYS[provider]
        return entry

    return parse_config(
        {
            "listen": listen,
            "interval": interval,
            "sources": [
                source("demo-whatabot", "whatabot"),
                source("demo-dify", "dify"),
                source("demo-syntropic", "syntropic137", push="sse"),  # reads the simulator's activity feed
                source("demo-honeyhive", "honeyhive", settle_after="10s"),  # api: search, which needs no project
                source("demo-honeyhive-events", "honeyhive", project=HONEYHIVE_PROJECT, settle_after="10s", api="events"),
                source("demo-honeyhive-sessions", "honeyhive", project=HONEYHIVE_PROJECT, settle_after="10s", api="sessions"),
                source(
                    "demo-kapso",
                    "kapso",
                    webhook_secret=DEMO_WEBHOOK_SECRET,  # its workflows discovered
                    **({"interval": kapso_interval} if kapso_interval else {}),
                ),
                source("demo-n8n", "n8n"),  # its workflows' names listed
            ],
        },
        {},
    )


@contextlib.asynccontextmanager
async def running_simulators(
    simulators: Simulators, tick_every: float | None = 1.0, host: str = "127.0.0.1"
) -> AsyncIterator[str]:
    """Serve the simulators on ``host`` with an OS-chosen port; yield the base URL.

    With ``tick_every`` the sessions evolve on their own; with None only explicit ticks move them.
    """
    runner = web.AppRunner(simulators.app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, 0)
    await site.start()
    port = runner.addresses[0][1]

    async def ticker() -> None:
        assert tick_every is not None
        while True:
            simulators.tick()
            await asyncio.sleep(tick_every)

    task = asyncio.create_task(ticker()) if tick_every else None
    try:
        yield f"http://{host}:{port}"
    finally:
        if task:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        await runner.cleanup()


@contextlib.asynccontextmanager
async def running_demo(listen: str, once: bool) -> AsyncIterator[tuple[Config, KapsoPusher]]:
    """``--demo``: the simulators on loopback with ten minutes of history (so the first scrape already
    has data), Kapso's webhooks pushed from them once the pusher is given a URL, and the config."""
    simulators = Simulators()
    simulators.backfill(600)
    async with running_simulators(simulators, tick_every=1.0) as base_url, pushing(simulators.factories["kapso"]) as pusher:
        log.info("demo mode: simulators of all six providers serving on loopback", base_url=base_url)
        yield demo_config(base_url, listen=listen, interval=1 if once else 5, kapso_interval=None if once else 300), pusher
