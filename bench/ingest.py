"""Ingest ratio: the exporter's provider + poller + state path against a bare aiohttp client
fetching and parsing the same Dify-shaped pages from a server in another process."""

from __future__ import annotations

import asyncio
import tempfile
import time

import aiohttp
import orjson
from common import page_server
from prometheus_client import CollectorRegistry

from agent_session_exporter.config import DEFAULT_BUCKETS, parse_config
from agent_session_exporter.keep.sqlite import SqliteStore
from agent_session_exporter.poller import build_poller
from agent_session_exporter.serve.selfmetrics import SelfMetrics

PAGE = 100
T0 = 1_780_000_000


async def ceiling(base_url: str, pages: int, concurrency: int) -> float:
    """Sessions per second of a bare client: fetch every page, parse it, count the items."""
    queue: asyncio.Queue[int] = asyncio.Queue()
    for page in range(1, pages + 1):
        queue.put_nowait(page)
    counted = 0

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal counted
        while not queue.empty():
            page = queue.get_nowait()
            async with session.get(f"{base_url}/v1/workflows/logs", params={"page": page, "limit": PAGE}) as response:
                counted += len(orjson.loads(await response.read())["data"])
    async with aiohttp.ClientSession() as session:
        started = time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return counted / elapsed


async def exporter_path(base_url: str, sessions: int, per_cycle: int) -> tuple[float, int]:
    """Sessions per second through provider, poller and SQLite state, cycle by cycle."""
    clock = {"now": float(T0)}
    source = parse_config({"sources": [{"name": "bench", "provider": "dify", "base_url": base_url + "/v1",
                                        "api_key": "bench-key", "initial_lookback": per_cycle + 1,
                                        "overlap": 60, "max_pages": 10_000}]}, {}).sources[0]
    with tempfile.TemporaryDirectory() as tmp:
        store = SqliteStore(f"{tmp}/state.db", {"bench": "dify"})
        async with aiohttp.ClientSession() as session:
            poller = build_poller(source, session, store, SelfMetrics(CollectorRegistry()), DEFAULT_BUCKETS,
                                        clock=lambda: clock["now"])
            busy = 0.0
            for horizon in range(T0 + per_cycle - 1, T0 + sessions - 1 + per_cycle, per_cycle):
                horizon = min(horizon, T0 + sessions - 1)
                async with session.post(f"{base_url}/horizon", params={"t": horizon}):
                    pass
                clock["now"] = horizon + 1.0
                started = time.perf_counter()
                assert await poller.run_cycle()
                busy += time.perf_counter() - started
            counted = sum(poller.state.totals.finished.values())
        store.close()
    return counted / busy, counted


def run(sessions: int = 200_000, per_cycle: int = 2000) -> dict[str, float]:
    with page_server(sessions, prerender=True) as base_url:
        pages = sessions // PAGE
        best = {c: asyncio.run(ceiling(base_url, pages, c)) for c in (1, 4, 8)}
        exporter_rate, counted = asyncio.run(exporter_path(base_url, sessions, per_cycle))
    assert counted == sessions, (counted, sessions)
    top = max(best.values())
    return {"ceiling_sessions_per_s": top, "ceiling_concurrency": max(best, key=best.get),
            "exporter_sessions_per_s": exporter_rate, "ratio": exporter_rate / top, "sessions": counted}


if __name__ == "__main__":
    import sys
    for key, value in run(int(sys.argv[1]) if len(sys.argv) > 1 else 200_000).items():
        print(f"{key:26s} {value:,.2f}")
