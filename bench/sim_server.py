"""The five provider simulators in their own process, for benchmarks that measure the exporter alone.

    python bench/sim_server.py [--rate 2] [--backfill 1800] [--freeze]

Prints the base URL on stdout; sessions evolve in real time (``--freeze``: backfill, finish
everything, then nothing new arrives: the idle steady state).
"""

from __future__ import annotations

import argparse
import asyncio

from common import BENCH  # noqa: F401  (puts the project on sys.path)

from agent_session_exporter.demo.runner import running_simulators
from agent_session_exporter.demo.server import Simulators


async def serve(rate: float, backfill: float, freeze: bool) -> None:
    simulators = Simulators(rate=rate, min_duration=0.5, max_duration=30, retention=3600)
    simulators.backfill(backfill)
    if freeze:
        for factory in simulators.factories.values():
            factory.rate = 0
        simulators.finish_all()
    async with running_simulators(simulators, tick_every=None if freeze else 0.2) as base_url:
        print(base_url, flush=True)
        await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=float, default=2.0)
    parser.add_argument("--backfill", type=float, default=1800)
    parser.add_argument("--freeze", action="store_true")
    args = parser.parse_args()
    try:
        asyncio.run(serve(args.rate, args.backfill, args.freeze))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
