"""Requests per cycle against the simulators, compared with the physical minimum.

The ideal of one request chain in one cycle is ``max(1, ceil(new / page_size))``: what is new
must be read, one page at least. The exporter's own requests come from the simulators' counters.
Simulated time (a fake clock), so this measures counts, not speed: it runs in seconds.

- after a burst: 300 sessions per source at once, then 240 cycles at a 1 s interval;
- under load: 15 new sessions/s per source, a 30 s interval, 40 cycles (20 minutes).

Under load sessions also run (2 to 40 s). Where a list is written as sessions start (Whatabot,
Syntropic137, Kapso, HoneyHive, newer Dify), learning how they ended means re-reading the list
back to the oldest running one (or looking each up): the sessions that ended since the last cycle
are spread among those still running and those counted, and no filter of these APIs selects them.
The bare ideal leaves that out; the second ideal (``with_pending``) adds it, the least any
newest-first reader pays. Where the list is written as sessions end (Dify 1.x, the ``finish``
scenario), nothing is pending and the bare ideal is the bound.

The HoneyHive export honours its ``event_type`` filter here, as documented (the simulator's
default lets child events through, to test that they are never counted).
"""

from __future__ import annotations

import asyncio
import math
from collections import Counter

from common import BENCH, chain_shares  # noqa: F401  (BENCH: puts the project on sys.path)

from agent_session_exporter.app import Exporter
from agent_session_exporter.demo.runner import demo_config, running_simulators
from agent_session_exporter.demo.server import Simulators


class Clock:
    def __init__(self) -> None:
        self.now = 1_780_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def _chains(exporter: Exporter) -> dict[str, list[tuple[int, float]]]:
    """Per simulator: one (page_size, share of its sessions) per request chain of the demo's sources."""
    chains: dict[str, list[tuple[int, float]]] = {}
    for source in exporter.config.sources:
        chains.setdefault(source.provider, []).extend((source.page_size, share) for share in chain_shares(source.provider))
    return chains


async def _scenario(
    rate: float, interval: float, cycles: int, burst: int, durations: tuple[float, float], dify_logs_at: str = "start"
) -> dict[str, float]:
    clock = Clock()
    simulators = Simulators(
        clock=clock,
        rate=rate,
        min_duration=durations[0],
        max_duration=durations[1],
        honeyhive_ignores_filters=False,
        dify_logs_at=dify_logs_at,
    )
    async with running_simulators(simulators, tick_every=None) as base_url:
        exporter = Exporter(demo_config(base_url, listen="127.0.0.1:0", interval=interval), clock=clock)
        await exporter.open()
        try:
            for factory in simulators.factories.values():
                for _ in range(burst):
                    factory.start_session(started_at=clock.now - factory.random.uniform(0, 1))
            for _ in range(max(3, int(60 / interval))):  # the backlog and the burst are read first
                clock.advance(interval)
                simulators.tick()
                await exporter.run_once()
            chains = _chains(exporter)
            simulators.requests.clear()
            ideal: Counter[str] = Counter()
            with_pending: Counter[str] = Counter()

            def listed(provider: str) -> int:
                """Rows the list has gained: sessions started, or ended where rows are written then."""
                factory = simulators.factories[provider]
                if provider == "dify" and dify_logs_at == "finish":
                    return sum(factory.truth.finished.values())
                return factory.started

            for _ in range(cycles):
                before = {p: listed(p) for p in simulators.factories}
                # What a newest-first list must re-read to learn how the running sessions ended:
                # everything back to the oldest of them.
                oldest = {
                    p: min((s.started_at for s in f.sessions.values() if s.running), default=clock.now)
                    for p, f in simulators.factories.items()
                }
                clock.advance(interval)
                simulators.tick()
                new = {p: listed(p) - before[p] for p in simulators.factories}
                reread = {
                    p: sum(1 for s in f.sessions.values() if s.started_at >= oldest[p]) for p, f in simulators.factories.items()
                }
                for provider, provider_chains in chains.items():
                    ideal[provider] += sum(
                        max(1, math.ceil(new[provider] * share / page_size)) for page_size, share in provider_chains
                    )
                    with_pending[provider] += sum(
                        max(1, math.ceil(max(new[provider], reread[provider]) * share / page_size))
                        for page_size, share in provider_chains
                    )
                await exporter.run_once()
        finally:
            await exporter.close()
    ratios = {p: simulators.requests[p] / ideal[p] for p in ideal}
    with_pending_ratios = {p: simulators.requests[p] / with_pending[p] for p in ideal}
    return {
        "ratio_max": max(ratios.values()),
        "ratio_with_pending_max": max(with_pending_ratios.values()),
        "requests_per_cycle": sum(simulators.requests.values()) / cycles,
        "ideal_per_cycle": sum(ideal.values()) / cycles,
        "ideal_with_pending_per_cycle": sum(with_pending.values()) / cycles,
        **{f"requests_{p}": simulators.requests[p] / cycles for p in ideal},
        **{f"ideal_{p}": ideal[p] / cycles for p in ideal},
        **{f"ratio_{p}": r for p, r in ratios.items()},
        **{f"ratio_with_pending_{p}": r for p, r in with_pending_ratios.items()},
    }


def run(smoke: bool = False) -> dict[str, float]:
    burst = asyncio.run(_scenario(rate=0.0, interval=1, cycles=40 if smoke else 240, burst=300, durations=(1.0, 4.0)))
    load = asyncio.run(_scenario(rate=15.0, interval=30, cycles=4 if smoke else 40, burst=0, durations=(2.0, 40.0)))
    at_finish = asyncio.run(
        _scenario(rate=15.0, interval=30, cycles=4 if smoke else 40, burst=0, durations=(2.0, 40.0), dify_logs_at="finish")
    )
    return {
        **{f"burst_{k}": v for k, v in burst.items()},
        **{f"load_{k}": v for k, v in load.items()},
        "finish_ratio_dify": at_finish["ratio_dify"],
        "finish_requests_per_cycle_dify": at_finish["requests_dify"],
        "finish_ideal_per_cycle_dify": at_finish["ideal_dify"],
    }


if __name__ == "__main__":
    for key, value in run().items():
        print(f"{key:32} {value:10.2f}")
