"""n8n 1.123's executions, simulated as a real n8n keeps them; ``demo/n8n_api.py`` serves them as its
public API does (its recorded answers are in tests/data/n8n/; tests/test_demo_n8n.py holds the
simulator to them).

What a newest-first reader has to live with, kept here on purpose: executions are listed newest
first by their sequential numeric id, never by time, with no time filter; the executions the n8n
process holds in memory (running ones, and waiting ones it put to sleep itself) are left out of
every list but ``?status=running``, so an execution enters the list when it ends, behind newer ones;
a waiting execution that resumes gets ``startedAt`` overwritten (only the detail's ``createdAt``
keeps its start); error text only with ``includeData=true``; no workflow names in executions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable

from agent_session_exporter.demo.sessions import PROVIDER_STATUSES, SessionFactory, SimSession

#: Workflow id (16 characters, random as n8n makes them) -> name.
N8N_WORKFLOWS = {
    "F2ydOqlUApzwvzaO": "Lead enrichment",
    "Wbf6E6HOjb0j1j6S": "Support triage",
    "vvsg5KzIVKRt9n0D": "Invoice approval",
}
#: What an execution's ``workflowData`` (with ``includeData=true``) holds of its workflow.
WORKFLOW_DATA = (
    "id",
    "name",
    "active",
    "activeVersionId",
    "isArchived",
    "createdAt",
    "updatedAt",
    "nodes",
    "connections",
    "settings",
    "staticData",
    "pinData",
)
CRASH_MESSAGE = "Workflow did not finish, possible out-of-memory issue"
ERROR_MESSAGE = "simulated failure [line 1]"
#: From a row being created to its run starting (``createdAt`` -> ``startedAt``), as recorded.
START_DELAY = 0.015
#: A Wait node of this many seconds or more puts its execution to sleep in the database ('waiting').
PERSISTED_WAIT = 65.0


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class N8nRun:
    """What n8n keeps of an execution beyond a simulated session: its row's creation and its Wait."""

    created_at: float
    #: The stretch a Wait node sleeps in the database (``stoppedAt`` .. ``waitTill``), if any.
    wait_from: float | None = None
    wait_until: float | None = None
    #: True once resumed from its Wait: ``startedAt`` reads ``wait_until`` from then on.
    resumed: bool = False


class N8nFactory(SessionFactory):
    """Executions with sequential ids, some of them waiting a while (a share ``waiting_share``);
    ``restart()`` does what an n8n restart does: running ones crash, waiting ones become listed."""

    def __init__(self, clock: Callable[[], float], waiting_share: float = 0.1, **options: Any) -> None:
        options.setdefault("workflow_ids", tuple(N8N_WORKFLOWS))
        super().__init__("n8n", clock, **options)
        self.waiting_share = waiting_share
        self.runs: dict[str, N8nRun] = {}
        self.next_id = 1
        self.last_created = -math.inf
        #: When the simulated n8n process last started: waits begun before it are listed.
        self.restarted_at = -math.inf

    def start_session(self, started_at: float | None = None, duration: float | None = None) -> SimSession:
        session = super().start_session(started_at, duration)
        del self.sessions[session.id]
        # Ids are handed out in creation order, so creation times never go back.
        created = max(session.started_at - START_DELAY, self.last_created)
        session.planned_end += created + START_DELAY - session.started_at
        session.started_at = session.last_event_at = created + START_DELAY
        session.id, self.next_id, self.last_created = str(self.next_id), self.next_id + 1, created
        run = N8nRun(created_at=created)
        if self.random.random() < self.waiting_share:
            run.wait_from = session.started_at + self.random.uniform(0.1, 1.0)
            run.wait_until = run.wait_from + self.random.uniform(PERSISTED_WAIT, 2 * PERSISTED_WAIT)
            session.planned_end = run.wait_until + self.random.uniform(0.1, 5.0)
        self.sessions[session.id], self.runs[session.id] = session, run
        return session

    def backfill(self, seconds: float) -> None:
        now = self.clock()
        for started in sorted(now - self.random.uniform(0, seconds) for _ in range(int(seconds * self.rate))):
            self.start_session(started)
        self._last_tick = None
        self.tick()

    def tick(self) -> None:
        super().tick()
        for gone in self.runs.keys() - self.sessions.keys():  # forgotten after the retention
            del self.runs[gone]

    def _progress(self, session: SimSession, now: float) -> None:
        run = self.runs[session.id]
        session.last_event_at = now
        if run.wait_from is not None and run.wait_until is not None and run.wait_from <= now:
            asleep = now < run.wait_until
            session.status, run.resumed = ("waiting", False) if asleep else ("running", True)

    def _finish(self, session: SimSession, ended_at: float, status: str | None = None) -> None:
        _, terminal = PROVIDER_STATUSES["n8n"]
        weights = [w if outcome == "success" else w * self.error_weight for _, outcome, w in terminal]
        chosen = self.random.choices(terminal, weights)[0] if status is None else next(t for t in terminal if t[0] == status)
        run = self.runs[session.id]
        session.status, session.outcome = chosen[0], chosen[1]
        session.ended_at = session.last_event_at = ended_at
        run.resumed = run.wait_until is not None and ended_at >= run.wait_until
        session.error = {"error": ERROR_MESSAGE, "crashed": CRASH_MESSAGE}.get(session.status)
        truth = self.truth
        truth.finished[(session.status, chosen[1])] += 1
        truth.errors += chosen[1] == "error"
        # What a reader should measure: from the start, or from createdAt once seen waiting.
        truth.duration_sum += ended_at - (run.created_at if run.resumed else session.started_at)
        truth.durations += 1

    def restart(self) -> None:
        """n8n restarted: runs in flight crash (``stoppedAt`` their last event), waits are listed."""
        now = self.clock()
        for session in self.sessions.values():
            if session.running and session.status == "running":
                self._finish(session, session.last_event_at, status="crashed")
        self.restarted_at = now

    def hidden(self, session: SimSession) -> bool:
        """In the process's memory, so out of the lists: running, or put to sleep since the last start."""
        run = self.runs[session.id]
        return session.status == "running" or (
            session.status == "waiting" and run.wait_from is not None and run.wait_from > self.restarted_at
        )

    def item(self, session: SimSession, detail: bool = False, include_data: bool = False) -> dict[str, Any]:
        """An execution as ``GET /executions`` lists it (``detail``: as ``/executions/{id}`` shows it)."""
        run = self.runs[session.id]
        waiting = session.status == "waiting"
        item: dict[str, Any] = {
            "id": session.id,
            "finished": session.status == "success",
            "mode": "webhook",
            "retryOf": None,
            "retrySuccessId": None,
            "status": session.status,
            "startedAt": iso(run.wait_until if run.resumed else session.started_at),
            "stoppedAt": iso(run.wait_from if waiting else session.ended_at),
            "workflowId": session.workflow_id,
            "waitTill": iso(run.wait_until) if waiting else None,
        }
        if detail:
            item = {
                **{k: item[k] for k in list(item)[:6]},
                "createdAt": iso(run.created_at),
                **{k: item[k] for k in ("startedAt", "stoppedAt")},
                "deletedAt": None,
                **{k: item[k] for k in ("workflowId", "waitTill")},
            }
        if include_data:
            result: dict[str, Any] = {"runData": {}, "lastNodeExecuted": "Step"}
            if session.error:
                result["error"] = {"message": session.error, "name": "Error", "level": "error", "tags": {}}
            item["data"] = {
                "version": 1,
                "startData": {},
                "resultData": result,
                "executionData": {
                    "contextData": {},
                    "nodeExecutionStack": [],
                    "metadata": {},
                    "waitingExecution": {},
                    "waitingExecutionSource": {},
                },
            }
            workflow = workflow_item(session.workflow_id)
            item["workflowData"] = {k: workflow[k] for k in WORKFLOW_DATA} | {"staticData": {}}
            item["customData"] = {}
        return item


def workflow_item(workflow_id: str) -> dict[str, Any]:
    """A workflow as ``GET /workflows`` lists it: its nodes twice, and much else."""
    stamp, version = "2026-01-01T00:00:00.000Z", f"{workflow_id[:8].lower()}-0000-4000-8000-000000000000"
    nodes = [
        {"id": "a1", "name": "Webhook", "type": "n8n-nodes-base.webhook", "typeVersion": 2, "position": [0, 0], "parameters": {}},
        {"id": "a2", "name": "Step", "type": "n8n-nodes-base.code", "typeVersion": 2, "position": [200, 0], "parameters": {}},
    ]
    connections = {"Webhook": {"main": [[{"node": "Step", "type": "main", "index": 0}]]}}
    item: dict[str, Any] = {
        "updatedAt": stamp,
        "createdAt": stamp,
        "id": workflow_id,
        "name": N8N_WORKFLOWS[workflow_id],
        "active": True,
        "isArchived": False,
        "nodes": nodes,
        "connections": connections,
        "settings": {"executionOrder": "v1", "callerPolicy": "workflowsFromSameOwner", "availableInMCP": False},
        "staticData": None,
        "meta": None,
        "pinData": None,
        "versionId": version,
        "activeVersionId": version,
        "triggerCount": 1,
        "shared": [
            {
                "updatedAt": stamp,
                "createdAt": stamp,
                "role": "workflow:owner",
                "workflowId": workflow_id,
                "projectId": "dMY1II44A80Bq7YZ",
            }
        ],
        "activeVersion": {
            "updatedAt": stamp,
            "createdAt": stamp,
            "versionId": version,
            "workflowId": workflow_id,
            "nodes": nodes,
            "connections": connections,
            "authors": "Demo",
            "name": None,
            "description": None,
        },
        "tags": [],
    }
    return item
