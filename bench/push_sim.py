"""The Kapso simulator, pushing its webhooks, and the Syntropic137 simulator, streaming its activity
feed, in their own process (for bench/push.py).

    python bench/push_sim.py [--rate 0.5] [--error-weight 6] [--tick 0.2] [--repeat-every 10]

Prints its base URL on stdout, then reads from stdin the URL to push Kapso's webhooks to. Besides the
simulated APIs it serves ``GET /bench/truth`` (per provider what it finished; Kapso's failures and
Syntropic137's sessions, each with the moment it ended by this process's clock; the pushes sent by
HTTP status) and ``POST /bench/finish`` (no new sessions; every running one ends now).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

from aiohttp import web
from common import BENCH  # noqa: F401  (puts the project on sys.path)

from agent_session_exporter.demo.pushes import DEMO_WEBHOOK_SECRET, pushing
from agent_session_exporter.demo.server import Simulators
from agent_session_exporter.demo.sessions import SimSession


async def serve(rate: float, error_weight: float, tick: float, repeat_every: int) -> None:
    simulators = Simulators(rate=0.0)
    kapso, syntropic = simulators.factories["kapso"], simulators.factories["syntropic137"]
    kapso.rate, kapso.error_weight = rate, error_weight
    syntropic.rate = rate
    failures: list[tuple[str, float]] = []
    ends: list[tuple[str, float]] = []
    app = simulators.app()

    async def truth(request: web.Request) -> web.Response:
        return web.json_response(
            {
                "kapso": {"finished": sum(kapso.truth.finished.values()), "errors": kapso.truth.errors, "ends": failures},
                "syntropic137": {
                    "finished": sum(syntropic.truth.finished.values()),
                    "errors": syntropic.truth.errors,
                    "ends": ends,
                },
                "sent": dict(pusher.sent),
                "streams": simulators.syntropic137.activity.connections,
            }
        )

    async def finish(request: web.Request) -> web.Response:
        kapso.rate = syntropic.rate = 0.0
        simulators.finish_all()
        return web.json_response({})

    app.router.add_get("/bench/truth", truth)
    app.router.add_post("/bench/finish", finish)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    print(f"http://127.0.0.1:{runner.addresses[0][1]}", flush=True)
    push_to = (await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)).strip()
    feed = simulators.syntropic137.activity

    def ended(session: SimSession) -> None:
        if not session.running:
            ends.append((session.id, time.time()))  # the moment the API shows it ended
        feed.note(session)

    syntropic.on_status = ended
    async with pushing(kapso, DEMO_WEBHOOK_SECRET, push_to) as pusher:
        pusher.repeat_every = repeat_every

        def noted(session: SimSession) -> None:
            if session.status == "failed":
                failures.append((session.id, time.time()))  # the moment the API shows it failed
            pusher.note(session)

        kapso.on_status = noted
        while True:
            simulators.tick()
            await asyncio.sleep(tick)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=float, default=0.5)
    parser.add_argument("--error-weight", type=float, default=6.0)
    parser.add_argument("--tick", type=float, default=0.2)
    parser.add_argument("--repeat-every", type=int, default=10)
    args = parser.parse_args()
    try:
        asyncio.run(serve(args.rate, args.error_weight, args.tick, args.repeat_every))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
