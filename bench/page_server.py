"""A Dify-shaped workflow-log server for the benchmarks, run in its own process.

    python bench/page_server.py --sessions 200000 [--spacing 1.0] [--prerender]

Session i was created at T0 + i * spacing and is visible once the horizon (POST /horizon?t=...)
reaches it. GET /v1/workflows/logs honours page, limit and created_at__after exactly as Dify does
(newest first, has_more). Prints the port on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import sys
from pathlib import Path

from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from agent_session_exporter.timeparse import parse_timestamp  # noqa: E402

T0 = 1_780_000_000
STATUSES = ("succeeded", "succeeded", "succeeded", "succeeded", "partial-succeeded", "failed", "stopped",
            "succeeded", "succeeded", "failed")
TEMPLATE = (
    '{{"id":"log-{i:08d}-5e43-4f90-be01-d5c5a088d156","workflow_run":{{"id":"run-{i:08d}-5e43-4f90-be01-d5c5a088d156",'
    '"version":"2025-01-16 12:00:00.000000","status":"{status}","error":{error},"elapsed_time":{elapsed},'
    '"total_tokens":{tokens},"total_steps":{steps},"created_at":{created},"finished_at":{finished},'
    '"exceptions_count":{exceptions},"triggered_from":"app"}},"created_from":"service-api",'
    '"created_by_role":"end_user","created_by_account":null,"created_by_end_user":{{'
    '"id":"f1e2d3c4-b5a6-7890-abcd-{i:012d}","type":"service_api","is_anonymous":false,'
    '"session_id":"user_workflow_{user:06d}"}},"created_at":{created},'
    '"app":{{"id":"a3b4c5d6-e7f8-4a1b-9c2d-3e4f5a6b7c8d","name":"Customer support triage","mode":"workflow"}},'
    '"inputs":{{"query":"Where is my order? It was supposed to arrive on Tuesday.","channel":"web"}}}}'
)


def render(i: int, spacing: float) -> bytes:
    status = STATUSES[i % len(STATUSES)]
    created = int(T0 + i * spacing)
    return TEMPLATE.format(
        i=i, status=status, error='"node failed"' if status == "failed" else "null", elapsed=round(0.5 + (i % 97) / 7, 3),
        tokens=100 + (i * 37) % 5000, steps=1 + i % 9, created=created, finished=created + 1 + i % 60,
        exceptions=1 if status == "partial-succeeded" else 0, user=i % 5000).encode()


def make_app(sessions: int, spacing: float, prerender: bool) -> web.Application:
    items = [render(i, spacing) for i in range(sessions)] if prerender else None
    state = {"horizon": T0 + (sessions - 1) * spacing}

    def item(i: int) -> bytes:
        return items[i] if items is not None else render(i, spacing)

    async def logs(request: web.Request) -> web.Response:
        page = int(request.query.get("page", 1))
        limit = int(request.query.get("limit", 20))
        newest = min(sessions - 1, math.floor((state["horizon"] - T0) / spacing))
        after = parse_timestamp(request.query.get("created_at__after"))
        oldest = 0 if after is None else max(0, math.ceil((after - T0) / spacing))
        total = max(0, newest - oldest + 1)
        first = newest - (page - 1) * limit
        last = max(oldest, first - limit + 1)
        data = b",".join(item(i) for i in range(first, last - 1, -1)) if first >= oldest else b""
        body = b'{"page":%d,"limit":%d,"total":%d,"has_more":%s,"data":[%s]}' % (
            page, limit, total, b"true" if total > page * limit else b"false", data)
        return web.Response(body=body, content_type="application/json")

    async def horizon(request: web.Request) -> web.Response:
        state["horizon"] = float(request.query["t"])
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/v1/workflows/logs", logs)
    app.router.add_post("/horizon", horizon)
    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sessions", type=int, required=True)
    parser.add_argument("--spacing", type=float, default=1.0)
    parser.add_argument("--prerender", action="store_true")
    args = parser.parse_args()
    runner = web.AppRunner(make_app(args.sessions, args.spacing, args.prerender), access_log=None)

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
