"""Ingest ratio: the exporter's provider + poller + state path against a bare aiohttp client fetching
and parsing the same pages from a server in another process, for each provider's page shape
(``bench/shapes.py``). Each ratio is the median of ``runs`` runs, each run measuring the ceiling and
the exporter side by side."""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time

import aiohttp
import orjson
from common import page_server
from prometheus_client import CollectorRegistry
from shapes import PAGE, T0, bare_requests, items_of, source

from agent_session_exporter.app import build_poller
from agent_session_exporter.config import DEFAULT_BUCKETS, parse_config
from agent_session_exporter.keep.sqlite import SqliteStore
from agent_session_exporter.serve.selfmetrics import SelfMetrics

SHAPES = ("dify", "whatabot", "syntropic137", "honeyhive", "kapso")


async def ceiling(base_url: str, shape: str, sessions: int, concurrency: int) -> float:
    """Sessions per second of a bare client: fetch every page, parse it, count the items."""
    queue: asyncio.Queue[tuple[str, dict[str, str], object]] = asyncio.Queue()
    for request in bare_requests(shape, sessions, 1.0):
        queue.put_nowait(request)
    counted = 0

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal counted
        while not queue.empty():
            path, query, body = queue.get_nowait()
            async with session.request(
                "POST" if body is not None else "GET",
                base_url + path,
                params=query,
                data=orjson.dumps(body) if body is not None else None,
                headers={"Content-Type": "application/json"},
            ) as response:
                payload = await response.read()  # awaited first: ``counted +=`` must not span an await
                counted += len(items_of(shape, orjson.loads(payload)))

    async with aiohttp.ClientSession() as session:
        started = time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    assert counted == sessions, (shape, counted, sessions)
    return counted / elapsed


async def exporter_path(base_url: str, shape: str, sessions: int, per_cycle: int) -> tuple[float, int]:
    """Sessions per second through provider, poller and SQLite state, cycle by cycle."""
    clock = {"now": float(T0)}
    entry = source(shape, base_url, per_cycle + 1)
    config = parse_config({"sources": [entry]}, {}).sources[0]
    with tempfile.TemporaryDirectory() as tmp:
        store = SqliteStore(f"{tmp}/state.db", {"bench": shape})
        async with aiohttp.ClientSession() as session:
            poller = build_poller(
                config, session, store, SelfMetrics(CollectorRegistry()), DEFAULT_BUCKETS, clock=lambda: clock["now"]
            )
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


def measure(shape: str, sessions: int, per_cycle: int) -> dict[str, float]:
    """One run of one shape: the ceiling (best of concurrency 1, 4, 8), then the exporter, same server."""
    with page_server(sessions, prerender=True, shape=shape) as base_url:
        best = {c: asyncio.run(ceiling(base_url, shape, sessions, c)) for c in (1, 4, 8)}
        exporter_rate, counted = asyncio.run(exporter_path(base_url, shape, sessions, per_cycle))
    assert counted == sessions, (shape, counted, sessions)
    top = max(best.values())
    return {
        "ceiling_sessions_per_s": top,
        "ceiling_concurrency": max(best, key=lambda c: best[c]),
        "exporter_sessions_per_s": exporter_rate,
        "ratio": exporter_rate / top,
        "sessions": counted,
    }


def run(
    sessions: int = 200_000, per_cycle: int = 2000, runs: int = 3, shape_sessions: int = 100_000, shapes: tuple[str, ...] = SHAPES
) -> dict[str, float]:
    """The Dify shape at ``sessions`` (the historical row) and every shape at ``shape_sessions``, each the
    run of median ratio among ``runs``."""
    figures: dict[str, float] = {}
    for shape in shapes:
        count = sessions if shape == "dify" else shape_sessions
        count -= count % PAGE[shape]
        results = sorted((measure(shape, count, per_cycle) for _ in range(runs)), key=lambda r: r["ratio"])
        median = results[len(results) // 2]
        if shape == "dify":
            figures.update(median)
        figures[f"ratio[{shape}]"] = median["ratio"]
        figures[f"ratios[{shape}]"] = statistics.median(r["ratio"] for r in results)
        figures[f"exporter_sessions_per_s[{shape}]"] = median["exporter_sessions_per_s"]
        figures[f"ceiling_sessions_per_s[{shape}]"] = median["ceiling_sessions_per_s"]
    figures["ratio_min"] = min(figures[f"ratio[{shape}]"] for shape in shapes)
    return figures


if __name__ == "__main__":
    import sys

    chosen = tuple(sys.argv[2].split(",")) if len(sys.argv) > 2 else SHAPES
    for key, value in run(
        int(sys.argv[1]) if len(sys.argv) > 1 else 200_000,
        runs=1,
        shape_sessions=int(sys.argv[1]) if len(sys.argv) > 1 else 100_000,
        shapes=chosen,
    ).items():
        print(f"{key:40s} {value:,.3f}")
