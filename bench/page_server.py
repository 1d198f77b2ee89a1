"""A page server for the ingest benchmark, run in its own process: one provider's list (``--shape``,
``bench/shapes.py``), items prerendered.

    python bench/page_server.py --sessions 200000 [--shape dify] [--spacing 1.0] [--prerender]

Session i was created at T0 + i * spacing and is visible once the horizon (POST /horizon?t=...)
reaches it. The list honours its API's paging and time filters (newest first). Prints the port on
stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from shapes import T0, Lists  # noqa: E402

__all__ = ["T0", "make_app"]


def make_app(sessions: int, spacing: float, prerender: bool, shape: str = "dify") -> web.Application:
    lists = Lists(shape, sessions, spacing, prerender)
    method, path = lists.route()

    async def answer(request: web.Request) -> web.Response:
        body = json.loads(await request.read()) if request.method == "POST" else None
        return web.Response(body=lists.answer(request.path, dict(request.query), body), content_type="application/json")

    async def horizon(request: web.Request) -> web.Response:
        lists.horizon = float(request.query["t"])
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_route(method, path, answer)
    app.router.add_post("/horizon", horizon)
    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sessions", type=int, required=True)
    parser.add_argument("--shape", default="dify")
    parser.add_argument("--spacing", type=float, default=1.0)
    parser.add_argument("--prerender", action="store_true")
    args = parser.parse_args()
    runner = web.AppRunner(make_app(args.sessions, args.spacing, args.prerender, args.shape), access_log=None)

    async def serve() -> None:
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        print(runner.addresses[0][1], flush=True)
        await asyncio.Event().wait()

    try:
        asyncio.run(serve())
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
