"""Kapso: ``GET {base_url}/workflows/{workflow_id}/executions`` (seeds/004).

Header ``X-API-Key``; one request chain per configured workflow, ``limit`` 1..100, following
``paging.cursors.after`` until a page is empty or has no next cursor. ``created_after``
(inclusive, on ``started_at``) bounds the window. List items carry ``status`` (the API reference
says so): then one chain per workflow suffices. Should an API omit it, the status is learned by
querying once per status with the ``status`` filter. ``handoff`` is a pause for a human
(``handoff -> running | ended | failed``), so it is active; an execution counts when it ends.
``error_details`` is the error text. Pending executions older than the window are re-read with
``GET {base_url}/workflow_executions/{id}``, one request each, instead of widening every workflow's
window back to them.

Without ``workflow_ids`` the workflows are discovered: ``GET {base_url}/workflows`` (cursor pages,
as the execution lists; a single page where the answer has no ``paging``) every
``discovery_interval``, at most ``max_workflows`` of them. A workflow missing from a listing is
still polled (a listing may miss one: eventual consistency, a page boundary moving; its list
answering 404 skips it); once missing from 3 listings in a row it is no longer polled, and its
pending executions are dropped (reason ``workflow_removed``). Should a discovery fail, the
workflows found last are polled meanwhile.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Literal
from urllib.parse import quote

from pydantic import Field, field_validator

from agent_session_exporter.model import (
    InvalidRecord,
    Outcome,
    PendingRef,
    PollResult,
    PollWindow,
    SessionRecord,
    classify,
)
from agent_session_exporter.read.fields import (
    elapsed,
    MAX_ERROR_TEXT,
    lenient_str,
    lenient_text,
    list_field,
    object_field,
    require_str,
    time_field,
)
from agent_session_exporter.read.http_client import HeaderAuth, HttpClient, NotFound, UpstreamError
from agent_session_exporter.read.pagers import cursor_pages
from agent_session_exporter.read.providers.base import Provider, now_of
from agent_session_exporter.read.push import PushSource
from agent_session_exporter.read.source import Duration
from agent_session_exporter.safetext import MAX_ID_BYTES, check_id
from agent_session_exporter.timeparse import to_iso

WORKFLOWS_PATH = "/workflows"
STATUSES: dict[str, Outcome | None] = {
    "running": None, "waiting": None, "handoff": None,
    "ended": Outcome.SUCCESS, "failed": Outcome.ERROR,
}
#: A discovered workflow is given up on only once it is missing from this many listings in a row.
MISSING_LISTINGS = 3


def read_page(body: Any, path: str) -> tuple[list[Any], str | None]:
    """A page's items, and the cursor of the next page (None: the last one), Graph-API style."""
    items = list_field(body, "data", path)
    paging = body.get("paging") if isinstance(body.get("paging"), dict) else {}
    cursors = paging.get("cursors") if isinstance(paging.get("cursors"), dict) else {}
    after = cursors.get("after")
    if not isinstance(after, str) or ("next" in paging and not paging["next"]):
        after = None
    return items, after


class KapsoSource(PushSource):
    SESSION_URL_DEFAULT = ("kapso.ai", "https://app.kapso.ai/workflows/{workflow}/executions/{session_id}")
    provider: Literal["kapso"]
    page_size: int = Field(100, ge=1, le=100)
    workflow_ids: tuple[str, ...] | None = Field(
        None, min_length=1, description="one request chain per workflow; without it, every workflow is discovered")
    discovery_interval: Duration = Field(600.0, ge=1, description="how often GET /workflows is listed anew "
                                                                   "(without workflow_ids)")
    max_workflows: int = Field(100, ge=1, description="at most this many discovered workflows are polled")

    @field_validator("workflow_ids", mode="before")
    @classmethod
    def _ids(cls, value: Any) -> Any:
        if value is None:
            return None
        if not isinstance(value, list) or not all(isinstance(w, str) and w.strip() for w in value):
            raise ValueError("must be a list of workflow ids")
        if len(set(value)) != len(value):
            raise ValueError("duplicate workflow id")
        return tuple(w.strip() for w in value)


class KapsoProvider(Provider):
    AUTH = HeaderAuth("X-API-Key", "")
    Config = KapsoSource
    STATUSES = STATUSES
    FIGURES: frozenset[str] = frozenset()
    PENDING_RECHECK = "lookup"

    def __init__(self, source: KapsoSource, http: HttpClient, clock: Callable[[], float] = time.time) -> None:
        super().__init__(source, http, clock)
        #: Taken while executions come without ``status``: it is learned with one query per status.
        self.status_field = self.fallback(
            "kapso executions carry no status field; learning status with one query per status",
            "kapso executions carry a status field again; one query chain per workflow")
        #: Whether the API has shown if executions carry ``status`` (said once in the log).
        self._status_seen = False
        #: Workflows polled though missing from the last listings: how many listings in a row.
        self._missing: dict[str, int] = {}
        #: Workflows given up on and not yet reported in a poll's result (a poll that fails after the
        #: listing, or starts again at a smaller page size, must not lose them).
        self._removed: set[str] = set()

    def describe(self) -> str:
        return ("kapso executions: status is read from each execution's 'status' field where present; "
                "where the API omits it, it is learned with one 'status'-filtered query per status "
                f"({', '.join(STATUSES)})")

    #: The workflows polled (without ``workflow_ids``): those discovered, and those missing from the
    #: last listings but not yet given up on; and when they were listed.
    _discovered: tuple[str, ...] | None = None
    _discovered_at: float | None = None

    async def poll(self, window: PollWindow) -> PollResult:
        result = PollResult()
        since, now = window.since, now_of(window)
        for workflow_id in await self._workflows(window.now):
            probe = PollResult()
            try:
                await self._walk(workflow_id, since, None, probe)
            except NotFound:
                if workflow_id not in self._missing:
                    raise
                continue  # missing from the listing, and its list gone too: skipped until it is given up on
            result.invalid.extend(probe.invalid)
            if not self.status_field.in_use(now):
                if not probe.records or all(r.status for r in probe.records):
                    if probe.records and not self._status_seen:
                        self._status_seen = True
                        self.log.info("kapso executions carry a status field; one query chain per workflow")
                    result.records.extend(probe.records)
                    continue
                self._status_seen = True  # from here on the fallback says when that changes
                self.status_field.broke(now, statuses=list(STATUSES))
            elif all(r.session_id in window.known_finished for r in probe.records):
                continue  # nothing new or pending in this workflow's window: no status to learn
            for status in STATUSES:
                await self._walk(workflow_id, since, status, result)
        self.status_field.held(now)
        await self.recheck_pending(window.stale_pending, result, self.fetch_one)
        result.removed_workflows, self._removed = self._removed, set()
        return result

    async def _workflows(self, now: float | None) -> tuple[str, ...]:
        """The configured workflows, or those discovered (listed anew once per ``discovery_interval``)."""
        if self.source.workflow_ids is not None:
            return self.source.workflow_ids
        now = time.time() if now is None else now
        if self._discovered is not None and self._discovered_at is not None \
                and now - self._discovered_at < self.source.discovery_interval:
            return self._discovered
        try:
            found = await self._discover()
        except UpstreamError as exc:
            if self._discovered is None:
                raise
            self.log.warning("workflow discovery failed; polling the workflows found last", error=str(exc),
                             workflows=len(self._discovered))
            return self._discovered
        previous = self._discovered
        if previous is not None:
            missing = {w: self._missing.get(w, 0) + 1 for w in previous if w not in found}
            removed = {w for w, listings in missing.items() if listings >= MISSING_LISTINGS}
            self._missing = {w: listings for w, listings in missing.items() if w not in removed}
            self._removed = (self._removed | removed) - set(found)
            added = [w for w in found if w not in previous]
            if added or removed or self._missing:
                self.log.info("workflows discovered", added=len(added), removed=len(removed),
                              missing=len(self._missing), polled=len(found) + len(self._missing))
        else:
            self.log.info("workflows discovered", polled=len(found))
        polled = found + tuple(w for w in previous or () if w in self._missing)
        self._discovered, self._discovered_at = polled, now
        return polled

    async def _discover(self) -> tuple[str, ...]:
        found: list[str] = []
        limit = self.source.max_workflows
        refused, reason = 0, ""

        async for items in cursor_pages(
                lambda after: self.http.get_json(WORKFLOWS_PATH, {"limit": min(100, limit), "after": after}),
                lambda body: read_page(body, WORKFLOWS_PATH),
                max_pages=self.source.max_pages, on_limit=self.max_pages_reached):
            for item in items:
                workflow_id = lenient_str(item, "id", limit=MAX_ID_BYTES + 1) if isinstance(item, dict) else None
                if not workflow_id or workflow_id in found:
                    continue
                try:
                    found.append(check_id(workflow_id))  # it goes into a path, and into the state
                except InvalidRecord as exc:
                    refused, reason = refused + 1, exc.reason
            if len(found) >= limit:
                break
        if refused:
            self.log.warning("workflows with ids that cannot be kept are not polled", workflows=refused, reason=reason)
        if len(found) > limit:
            self.log.warning("more workflows than max_workflows; polling the first of them", max_workflows=limit)
        return tuple(found[:limit])

    def polls_workflow(self, workflow: str) -> bool:
        """Those named, else those discovered (every one before the first listing)."""
        if self.source.workflow_ids is None and self._discovered is not None:
            return workflow in self._discovered
        return super().polls_workflow(workflow)

    async def fetch_one(self, ref: PendingRef) -> list[Any]:
        body = await self.http.get_json(f"/workflow_executions/{quote(ref.session_id, safe='')}")
        # The platform API wraps one object in ``data``; accept it bare as well.
        return [body["data"] if isinstance(body, dict) and isinstance(body.get("data"), dict) else body]

    async def _walk(self, workflow_id: str, since: float, status: str | None, result: PollResult) -> None:
        path = f"/workflows/{quote(workflow_id, safe='')}/executions"
        params: dict[str, Any] = {"limit": self.source.page_size, "created_after": to_iso(since), "status": status}
        parse = self.parse_item if status is None else (lambda item: self._parse(item, status))

        async for items in cursor_pages(lambda after: self.http.get_json(path, {**params, "after": after}),
                                        lambda body: read_page(body, path),
                                        max_pages=self.source.max_pages,
                                        on_limit=lambda: self.max_pages_reached(workflow_id=workflow_id)):
            self.parse_items(items, result, parse)

    def parse_item(self, item: dict[str, Any]) -> SessionRecord:
        status = item.get("status")
        return self._parse(item, status if isinstance(status, str) else "")

    def _parse(self, item: dict[str, Any], status: str) -> SessionRecord:
        if item.get("status") is not None:
            status = require_str(item, "status")
        started_at = time_field(item, "started_at", required=True)
        finished_at = time_field(item, "ended_at")
        assert started_at is not None
        workflow = object_field(item, "workflow")  # its status is the workflow's, not the execution's
        phase, outcome, known = classify(status, STATUSES, finished_at) if status else classify("", {}, None)
        details = item.get("error_details")
        return SessionRecord(
            session_id=require_str(item, "id", allow_int=True), status=status, phase=phase, outcome=outcome,
            known_status=known or not status, key_time=started_at, started_at=started_at,
            finished_at=finished_at, duration_seconds=elapsed(started_at, finished_at),
            error_text=bool(details) and not isinstance(details, bool),
            workflow=lenient_str(workflow, "id") or lenient_str(item, "workflow_id") or "",
            workflow_name=lenient_str(workflow, "name"),
            error_message=_excerpt(details),
        )


def _excerpt(details: Any) -> str | None:
    """``error_details`` is free-form: a text, or an object with a message."""
    if isinstance(details, dict):
        return lenient_str(details, "message", MAX_ERROR_TEXT) or lenient_str(details, "error", MAX_ERROR_TEXT)
    return lenient_text(details, MAX_ERROR_TEXT)
