"""Golden ``/metrics`` files: for each provider a fixed set of API pages in, the session families out.

Each case is a directory ``tests/golden/<case>/`` of JSON files, ``poll1.json``, ``poll2.json``, ...:
the upstream's list at each poll, newest first, every item in the provider's own API shape (keys
starting with ``_``, such as ``_note``, say what an item is there for and are never served). A fake
upstream (aioresponses, as the provider tests use) serves each list as the API does: in pages of the
source's ``page_size``, with the API's filters and detail lookups. The source's poller runs one
cycle per file on a fixed clock (30 s apart), then its ``session_metrics`` collector, alone in a
registry (so no ``agent_session_exporter_*`` self-metric, and no timing value, is in the output), is
rendered by prometheus_client in the text format (``tests/golden/<case>.prom``) and in OpenMetrics,
exemplars included (``tests/golden/<case>.om``). Each is compared byte for byte with its file: a
change of output is a diff to review.

To rewrite the golden files after an intended change, then review ``git diff tests/golden``::

    UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/test_golden.py
"""

from __future__ import annotations

import difflib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable
from urllib.parse import unquote

import pytest
from aioresponses import CallbackResult, aioresponses
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics

from agent_session_exporter.timeparse import parse_timestamp

from .helpers import Harness, Upstream, make_source, spring_page, sum_samples

GOLDEN = Path(__file__).resolve().parent / "golden"
UPDATE = os.environ.get("UPDATE_GOLDEN", "") not in ("", "0")
#: Seconds between two polls of a case (the clock starts at helpers.FakeClock's 2026-05-28T20:26:40Z).
POLL_EVERY = 30.0

Items = list[dict[str, Any]]


def _served(item: dict[str, Any]) -> dict[str, Any]:
    """An item as the API sends it: without the case file's ``_`` notes."""
    return {key: value for key, value in item.items() if not key.startswith("_")}


def _not_found() -> CallbackResult:
    return CallbackResult(status=404, payload={"message": "Not Found"})


def _between(value: float, low: float | None, high: float | None) -> bool:
    return (low is None or value >= low) and (high is None or value <= high)


# --- The fake upstreams: each serves a case file's list the way its API pages and filters ----------


def serve_whatabot(items: Items, path: str, params: dict[str, str], body: Any) -> Any:
    """``GET /sessions/logs``: zero-based ``page``/``size``, a Spring page; ``sessionId`` filters."""
    if path != "/sessions/logs":
        return _not_found()
    if "sessionId" in params:
        items = [item for item in items if item["id"] == params["sessionId"]]
    page, size = int(params["page"]), int(params["size"])
    return spring_page([_served(i) for i in items[page * size : (page + 1) * size]], page, size, len(items))


def serve_dify(items: Items, path: str, params: dict[str, str], body: Any) -> Any:
    """``GET /workflows/logs``: one-based ``page``/``limit``, ``has_more``, ``total``; ``created_at``
    bounds inclusive."""
    if path != "/workflows/logs":
        return _not_found()
    low, high = parse_timestamp(params.get("created_at__after")), parse_timestamp(params.get("created_at__before"))
    chosen = [item for item in items if _between(item["created_at"], low, high)]
    page, limit = int(params["page"]), int(params["limit"])
    return {
        "page": page,
        "limit": limit,
        "total": len(chosen),
        "has_more": len(chosen) > page * limit,
        "data": [_served(i) for i in chosen[(page - 1) * limit : page * limit]],
    }


def serve_syntropic(items: Items, path: str, params: dict[str, str], body: Any) -> Any:
    """``GET /sessions``: at most ``limit`` of the sessions started within the inclusive bounds, newest
    first, ``total`` the page's length; ``GET /sessions/{id}`` one session."""
    if path.startswith("/sessions/"):
        wanted = unquote(path.removeprefix("/sessions/"))
        found = [item for item in items if item["id"] == wanted]
        return _served(found[0]) if found else _not_found()
    if path != "/sessions":
        return _not_found()
    low, high = parse_timestamp(params.get("started_after")), parse_timestamp(params.get("started_before"))
    chosen = [
        item
        for item in items
        if _between(parse_timestamp(item["started_at"]), low, high) and params.get("workflow_id") in (None, item["workflow_id"])
    ][: int(params["limit"])]
    return {"sessions": [_served(i) for i in chosen], "total": len(chosen)}


def serve_honeyhive_sessions(items: Items, path: str, params: dict[str, str], body: Any) -> Any:
    """``GET /session``: a bare list of at most ``limit`` sessions."""
    if path != "/session" or params.get("project") != "proj":
        return _not_found()
    return [_served(i) for i in items[: int(params["limit"])]]


def serve_honeyhive_events(items: Items, path: str, params: dict[str, str], body: Any) -> Any:
    """``POST /v1/events/export``: ``dateRange`` on ``start_time`` (ms), one-based ``page``/``limit``,
    ``totalEvents``. The ``event_type`` filter is not applied: a child event gets through."""
    if path != "/v1/events/export" or body.get("project") != "proj":
        return _not_found()
    low, high = (parse_timestamp(body["dateRange"][key]) for key in ("$gte", "$lte"))
    chosen = [item for item in items if _between(item["start_time"] / 1000, low, high)]
    page, limit = body["page"], body["limit"]
    return {"events": [_served(i) for i in chosen[(page - 1) * limit : page * limit]], "totalEvents": len(chosen)}


def serve_honeyhive_search(items: Items, path: str, params: dict[str, str], body: Any) -> Any:
    """``POST /v1/events/search`` (no ``project``: the key is project-scoped): ``dateRange`` on
    ``start_time`` (ms), a ``session_id is`` filter, one-based ``page``/``limit``, newest start first as
    listed. The ``event_type`` filter is not applied: a child event gets through. ``count`` is the page's
    length, which the exporter never takes for a total."""
    if path != "/v1/events/search" or not body.keys() <= {"filters", "dateRange", "limit", "page"}:
        return _not_found()
    low, high = (parse_timestamp(body["dateRange"][key]) for key in ("start_time", "end_time"))
    wanted = [rule["value"] for rule in body["filters"] if rule["field"] == "session_id" and rule["operator"] == "is"]
    chosen = [
        item
        for item in items
        if _between(item["start_time"] / 1000, low, high) and all(item["session_id"] == value for value in wanted)
    ]
    page, limit = body["page"], body["limit"]
    events = [_served(i) for i in chosen[(page - 1) * limit : page * limit]]
    return {"events": events, "count": len(events)}


def serve_kapso(items: Items, path: str, params: dict[str, str], body: Any) -> Any:
    """``GET /workflows/{id}/executions``: ``created_after`` on ``started_at``, ``limit``, ``after``
    cursors (offsets here); ``GET /workflow_executions/{id}`` one execution in ``data``."""
    parts = path.split("/")
    if path.startswith("/workflow_executions/"):
        wanted = unquote(parts[2])
        found = [item for item in items if item["id"] == wanted]
        return {"data": _served(found[0])} if found else _not_found()
    if len(parts) != 4 or parts[1] != "workflows" or parts[3] != "executions":
        return _not_found()
    low = parse_timestamp(params.get("created_after"))
    chosen = [
        item
        for item in items
        if item["workflow"]["id"] == parts[2]
        and _between(parse_timestamp(item["started_at"]), low, None)
        and params.get("status") in (None, item["status"])
    ]
    start, limit = int(params.get("after") or 0), int(params["limit"])
    more = start + limit < len(chosen)
    return {
        "data": [_served(i) for i in chosen[start : start + limit]],
        "paging": {
            "cursors": {"before": str(start), "after": str(start + limit)},
            "next": f"{path}?after={start + limit}" if more else None,
            "previous": None,
        },
    }


@dataclass(frozen=True)
class Case:
    provider: str
    serve: Callable[[Items, str, dict[str, str], Any], Any]
    #: Sessions counted finished, and active, after the last poll: a check apart from the golden
    #: files, so that a regenerated file cannot quietly accept a session counted twice.
    finished: int
    active: int
    #: The source's config beyond helpers.make_source's defaults.
    source: dict[str, Any] = field(default_factory=dict)
    method: str = "get"


CASES = {
    "whatabot": Case("whatabot", serve_whatabot, finished=9, active=2, source={"page_size": 3}),
    "dify": Case("dify", serve_dify, finished=8, active=1, source={"page_size": 3}),
    "syntropic137": Case("syntropic137", serve_syntropic, finished=9, active=1, source={"page_size": 3}),
    "honeyhive-sessions": Case(
        "honeyhive", serve_honeyhive_sessions, finished=5, active=3, source={"api": "sessions", "settle_after": "20s"}
    ),
    "honeyhive-events": Case(
        "honeyhive",
        serve_honeyhive_events,
        finished=5,
        active=3,
        source={"api": "events", "page_size": 3, "settle_after": "20s"},
        method="post",
    ),
    "honeyhive-search": Case(
        "honeyhive",
        serve_honeyhive_search,
        finished=5,
        active=3,
        source={"api": "search", "page_size": 3, "settle_after": "20s"},
        method="post",
    ),
    "kapso": Case(
        "kapso", serve_kapso, finished=7, active=3, source={"page_size": 2, "workflow_ids": ["wf-support", "wf-sales"]}
    ),
}


def _polls(case: str) -> list[Items]:
    files = sorted((GOLDEN / case).glob("poll*.json"), key=lambda path: int(path.stem.removeprefix("poll")))
    assert files, f"no input pages in {GOLDEN / case}"
    return [json.loads(path.read_text(encoding="utf-8"))["items"] for path in files]


def check_golden(path: Path, actual: bytes) -> None:
    """``actual`` must equal ``path`` byte for byte (UPDATE_GOLDEN=1: ``path`` is rewritten to it)."""
    if UPDATE:
        if not path.exists() or path.read_bytes() != actual:
            path.write_bytes(actual)
        return
    if not path.exists():
        pytest.fail(f"{path.name} is missing: run UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/test_golden.py")
    expected = path.read_bytes()
    if expected != actual:
        diff = difflib.unified_diff(
            expected.decode().splitlines(keepends=True),
            actual.decode().splitlines(keepends=True),
            fromfile=f"golden/{path.name}",
            tofile=f"{path.name} (this run)",
        )
        pytest.fail(
            f"{path.name} differs from the output (a change of output is a diff to review; if it is "
            "intended, run UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/test_golden.py):\n" + "".join(diff),
            pytrace=False,
        )


@pytest.mark.parametrize("case", list(CASES))
async def test_golden_metrics(case, http_session, clock):
    spec = CASES[case]
    h = Harness(make_source(spec.provider, name=case, **spec.source), http_session, clock)
    listing: dict[str, Items] = {"items": []}
    upstream = Upstream(
        lambda path, params: spec.serve(listing["items"], path, params, upstream.bodies[-1] if spec.method == "post" else None)
    )
    with aioresponses() as mocked:
        getattr(mocked, spec.method)(Upstream.pattern(), callback=upstream, repeat=True)
        for number, items in enumerate(_polls(case)):
            if number:
                clock.advance(POLL_EVERY)
            listing["items"] = items
            assert await h.poller.run_cycle(), f"poll {number + 1}: {h.poller.last_result}"
    # The case files list newest first, as the APIs sort: an edit out of order would read another way.
    assert h.provider.trust_order, f"the items of tests/golden/{case}/ are not newest first"

    registry = CollectorRegistry(auto_describe=False)
    registry.register(h.poller.session_metrics)
    text = generate_latest(registry)
    assert b"agent_session_exporter_" not in text  # the session families only: no self-metric, no timing
    assert sum_samples(registry, "agent_sessions_finished_total") == spec.finished
    assert sum_samples(registry, "agent_sessions_active") == spec.active
    check_golden(GOLDEN / f"{case}.prom", text)
    check_golden(GOLDEN / f"{case}.om", generate_openmetrics(registry))
