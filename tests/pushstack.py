"""A Kapso simulator, an exporter with a source taking its webhooks, and the webhook listener, each a
real aiohttp server on 127.0.0.1 (ports the OS chooses), sharing one fake clock; and what the push
tests do with them."""

from __future__ import annotations

import contextlib
import json
import uuid
from typing import Any, AsyncIterator

import aiohttp
from aiohttp import web

from agent_session_exporter.app import Exporter
from agent_session_exporter.config import parse_config
from agent_session_exporter.count.hints import SeenKeys
from agent_session_exporter.demo.pushes import kapso_event, sign
from agent_session_exporter.demo.runner import running_simulators
from agent_session_exporter.demo.server import DEMO_KEYS, KAPSO_WORKFLOWS, PREFIXES, Simulators
from agent_session_exporter.demo.sessions import SimSession
from agent_session_exporter.serve.listener import ConnectionGuard
from agent_session_exporter.serve.webhooks import make_webhook_app

from .helpers import FakeClock, total_of
from .sourcestack import SourceStack

SECRET = "kapso-test-webhook-secret-0123"


class PushStack(SourceStack):
    def __init__(
        self, simulators: Simulators, exporter: Exporter, url: str, client: aiohttp.ClientSession, clock: FakeClock
    ) -> None:
        super().__init__(simulators, exporter, clock, "ka")
        self.url, self.client = url, client
        self.kapso = simulators.factories["kapso"]

    def execution(self, seconds_ago: float = 5.0, duration: float = 1.0, workflow: str = KAPSO_WORKFLOWS[0]) -> SimSession:
        """A new execution, started ``seconds_ago``, that ends ``duration`` after its start (at a tick)."""
        session = self.kapso.start_session(self.clock() - seconds_ago, duration)
        session.workflow_id = workflow
        return session

    async def post(
        self,
        payload: Any,
        source: str = "ka",
        secret: str | None = SECRET,
        key: str | None = "",
        headers: dict[str, str] | None = None,
    ) -> tuple[int, str]:
        """POST a delivery (a payload, or raw bytes) signed with ``secret`` (None: unsigned), with an
        ``X-Idempotency-Key`` (a new one unless given; None: none)."""
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        sent = {"Content-Type": "application/json", "X-Webhook-Event": "workflow.execution.failed"}
        if secret is not None:
            sent["X-Webhook-Signature"] = sign(secret, body)
        if key is not None:
            sent["X-Idempotency-Key"] = key or str(uuid.uuid4())
        async with self.client.post(
            f"{self.url}/webhooks/kapso/{source}", data=body, headers={**sent, **(headers or {})}
        ) as response:
            return response.status, await response.text()

    async def push(self, session: SimSession, **kwargs: Any) -> tuple[int, str]:
        """Push the execution's failure (whatever it is upstream)."""
        return await self.post(kapso_event(session, "failed"), **kwargs)

    def pushes(self, outcome: str, source: str = "ka") -> float:
        return (
            self.exporter.registry.get_sample_value(
                "agent_session_exporter_pushes_total", {"source": source, "provider": "kapso", "outcome": outcome}
            )
            or 0.0
        )

    def counted(self, outcome: str = "error") -> float:
        return total_of(self.samples(), "agent_sessions_finished_total", source="ka", outcome=outcome)


@contextlib.asynccontextmanager
async def push_stack(clock: FakeClock, **source: Any) -> AsyncIterator[PushStack]:
    simulators = Simulators(clock=clock, rate=0)
    simulators.factories["kapso"].set_error_weight(10**6)  # every execution fails
    async with running_simulators(simulators, tick_every=None) as base_url:
        config = parse_config(
            {
                "interval": 300,
                "sources": [
                    {
                        "name": "ka",
                        "provider": "kapso",
                        "base_url": base_url + PREFIXES["kapso"],
                        "api_key": DEMO_KEYS["kapso"],
                        "workflow_ids": list(KAPSO_WORKFLOWS),
                        "webhook_secret": SECRET,
                        **source,
                    },
                    {
                        "name": "kb",
                        "provider": "kapso",
                        "base_url": base_url + PREFIXES["kapso"],
                        "api_key": DEMO_KEYS["kapso"],
                        "workflow_ids": list(KAPSO_WORKFLOWS),
                    },
                ],
            },
            {},
        )
        exporter = Exporter(config, clock=clock)
        await exporter.open()
        guard = ConnectionGuard(8, on_refused=exporter.connection_refused)
        runner = web.AppRunner(make_webhook_app(exporter.pushes, guard, SeenKeys(clock=clock)), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        try:
            async with aiohttp.ClientSession() as client:
                yield PushStack(simulators, exporter, f"http://{host}:{port}", client, clock)
        finally:
            await runner.cleanup()
            await exporter.close()
