"""Kapso's project webhooks, simulated: every execution of the Kapso simulator that fails or is
handed off is POSTed to the exporter's webhook listener as Kapso sends it (flat JSON, signed with
the demo's secret, one ``X-Idempotency-Key`` per event; a delivery not answered 200 is tried again
after 10, 40 and 90 seconds), so ``--demo`` shows Kapso's failures within a second or two however
long the source's interval."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import uuid
from collections import Counter, OrderedDict
from datetime import datetime, timezone
from typing import Any, AsyncIterator

import aiohttp

from agent_session_exporter.demo.sessions import SessionFactory, SimSession

#: The secret the demo's Kapso source and its simulated webhooks share.
DEMO_WEBHOOK_SECRET = "demo-kapso-webhook-secret"
#: Kapso's retries of a delivery not answered 200, in seconds after the one before.
RETRIES = (10.0, 40.0, 90.0)
EVENTS = {"failed": "workflow.execution.failed", "handoff": "workflow.execution.handoff"}


def sign(secret: str, body: bytes) -> str:
    """Kapso's ``X-Webhook-Signature``: the hex HMAC-SHA256 of the raw body."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def kapso_event(session: SimSession, status: str | None = None, project_id: str = "demo-project") -> dict[str, Any]:
    """The flat payload Kapso pushes for an execution that failed or was handed off (``status``: what the
    push says, by default the execution's status)."""
    status = status or session.status
    payload: dict[str, Any] = {
        "event": EVENTS[status],
        "occurred_at": datetime.now(timezone.utc).isoformat().replace("+00:00", "Z"),
        "project_id": project_id,
        "workflow_id": session.workflow_id,
        "workflow_execution_id": session.id,
        "status": status,
        "tracking_id": session.id,
        "whatsapp_conversation_id": session.id,
    }
    if status == "failed":
        payload["error"] = {"message": session.error or "failed"}
    else:
        payload["handoff"] = {"reason": "customer asked for a person", "source": "handoff_node"}
    return payload


class KapsoPusher:
    """Pushes the Kapso simulator's failures and handoffs to ``url`` (None: nowhere yet, and those
    are lost, as they would be while a receiver is down). ``sent`` counts deliveries by HTTP status
    (or ``error``)."""

    def __init__(
        self, factory: SessionFactory, secret: str = DEMO_WEBHOOK_SECRET, url: str | None = None, repeat_every: int = 0
    ) -> None:
        self.secret = secret
        self.url = url
        #: Every ``repeat_every``-th delivery is sent twice (Kapso "may deliver more than once"); 0: none.
        self.repeat_every = repeat_every
        self.noted = 0
        self.sent: Counter[str] = Counter()
        self._handed_off: OrderedDict[str, None] = OrderedDict()
        self._outbox: asyncio.Queue[tuple[bytes, dict[str, str], int]] = asyncio.Queue()
        factory.on_status = self.note

    def push_to(self, base_url: str, source: str = "demo-kapso") -> None:
        """Push to the exporter's webhook listener at ``base_url``, for ``source``."""
        self.url = f"{base_url}/webhooks/kapso/{source}"

    def note(self, session: SimSession) -> None:
        if session.status not in EVENTS or self.url is None:
            return
        if session.status == "handoff":  # the simulator hands executions back and forth: the first is pushed
            if session.id in self._handed_off:
                return
            self._handed_off[session.id] = None
            if len(self._handed_off) > 10_000:
                self._handed_off.popitem(last=False)
        body = json.dumps(kapso_event(session)).encode()
        headers = {
            "Content-Type": "application/json",
            "X-Webhook-Event": EVENTS[session.status],
            "X-Webhook-Signature": sign(self.secret, body),
            "X-Idempotency-Key": str(uuid.uuid4()),
            "X-Webhook-Payload-Version": "v2",
        }
        self._outbox.put_nowait((body, headers, 0))
        self.noted += 1
        if self.repeat_every and self.noted % self.repeat_every == 0:
            self._outbox.put_nowait((body, headers, len(RETRIES)))

    async def run(self) -> None:
        """Deliver what the simulator pushes, one at a time, until cancelled."""
        retries: set[asyncio.Task[None]] = set()
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as client:
            try:
                await self._deliver(client, retries)
            finally:
                for retry in retries:
                    retry.cancel()

    async def _deliver(self, client: aiohttp.ClientSession, retries: set[asyncio.Task[None]]) -> None:
        while True:
            body, headers, attempt = await self._outbox.get()
            try:
                async with client.post(self.url or "", data=body, headers=headers, ssl=False) as response:
                    status = str(response.status)
            except (aiohttp.ClientError, asyncio.TimeoutError, ValueError):
                status = "error"
            self.sent[status] += 1
            if status != "200" and attempt < len(RETRIES):
                retry = asyncio.create_task(self._later(RETRIES[attempt], (body, headers, attempt + 1)))
                retries.add(retry)
                retry.add_done_callback(retries.discard)

    async def _later(self, seconds: float, delivery: tuple[bytes, dict[str, str], int]) -> None:
        await asyncio.sleep(seconds)
        self._outbox.put_nowait(delivery)


@contextlib.asynccontextmanager
async def pushing(
    factory: SessionFactory, secret: str = DEMO_WEBHOOK_SECRET, url: str | None = None
) -> AsyncIterator[KapsoPusher]:
    """A KapsoPusher delivering while the block runs."""
    pusher = KapsoPusher(factory, secret, url)
    task = asyncio.create_task(pusher.run())
    try:
        yield pusher
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        factory.on_status = None
