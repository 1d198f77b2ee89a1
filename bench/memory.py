"""Memory: stream sessions through one source over a simulated week; RSS after the first 10 %,
at the end, and the peak. Most sessions fall out of the overlap window, so RSS must stay flat."""

from __future__ import annotations

import asyncio
import gc
import tempfile

import aiohttp
from common import page_server, rss_mb
from prometheus_client import CollectorRegistry

from agent_session_exporter.app import build_poller
from agent_session_exporter.config import DEFAULT_BUCKETS, parse_config
from agent_session_exporter.keep.sqlite import SqliteStore
from agent_session_exporter.serve.selfmetrics import SelfMetrics

T0 = 1_780_000_000
WEEK = 7 * 86400


async def stream(sessions: int, cycle_seconds: float) -> dict[str, float]:
    spacing = WEEK / sessions
    clock = {"now": float(T0)}
    source = parse_config(
        {
            "sources": [
                {
                    "name": "mem",
                    "provider": "dify",
                    "api_key": "bench-key",
                    "base_url": "http://placeholder",
                    "initial_lookback": cycle_seconds + 1,
                    "overlap": "10m",
                    "max_pages": 10_000,
                }
            ]
        },
        {},
    ).sources[0]
    with page_server(sessions, spacing=spacing) as base_url, tempfile.TemporaryDirectory() as tmp:
        source = source.model_copy(update={"base_url": base_url + "/v1"})
        store = SqliteStore(f"{tmp}/state.db", {"mem": "dify"})
        async with aiohttp.ClientSession() as session:
            poller = build_poller(
                source, session, store, SelfMetrics(CollectorRegistry()), DEFAULT_BUCKETS, clock=lambda: clock["now"]
            )
            rss_at_tenth = None
            horizon = float(T0)
            while horizon < T0 + WEEK:
                horizon = min(horizon + cycle_seconds, T0 + WEEK)
                async with session.post(f"{base_url}/horizon", params={"t": horizon}):
                    pass
                clock["now"] = horizon + 1.0
                assert await poller.run_cycle()
                counted = sum(poller.state.totals.finished.values())
                if rss_at_tenth is None and counted >= sessions // 10:
                    gc.collect()
                    rss_at_tenth = rss_mb()[0]
            gc.collect()
            rss_end, rss_peak = rss_mb()
            tracked = len(poller.state.counted) + len(poller.state.pending)
            rows = store.row_counts()
        store.close()
    return {
        "sessions": counted,
        "rss_after_10pct_mb": rss_at_tenth,
        "rss_end_mb": rss_end,
        "rss_growth_pct": (rss_end / rss_at_tenth - 1) * 100,
        "rss_peak_mb": rss_peak,
        "tracked_ids_end": tracked,
        "state_rows_end": rows["counted"] + rows["pending"],
    }


def run(sessions: int = 1_000_000, cycle_seconds: float = 600) -> dict[str, float]:
    return asyncio.run(stream(sessions, cycle_seconds))


if __name__ == "__main__":
    import sys

    for key, value in run(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000).items():
        print(f"{key:24s} {value:,.2f}")
