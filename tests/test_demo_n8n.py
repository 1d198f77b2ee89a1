"""The n8n simulator (demo/n8n.py) against a real n8n's recorded answers (tests/data/n8n/): the same
fields in the same order with the same types for every status, the same paging, the same errors,
the same hidden executions. Shapes are compared, not values: ids and times are the simulator's own."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any, AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from agent_session_exporter.demo.n8n import N8N_WORKFLOWS, PERSISTED_WAIT, N8nFactory
from agent_session_exporter.demo.n8n_api import N8N_KEY, N8N_PREFIX, N8nSimulator
from agent_session_exporter.timeparse import parse_timestamp

from .helpers import FakeClock

DATA = Path(__file__).parent / "data" / "n8n"
T1, T2, HIDDEN = DATA / "t1-after-firing", DATA / "t2-60s-later", DATA / "hidden-waiting"


def recorded(path: Path) -> dict[str, Any]:
    """``{"request", "http", "body"}`` as recorded (a bare body is read as an HTTP 200)."""
    value = json.loads(path.read_text())
    return value if "request" in value else {"request": None, "http": 200, "body": value}


def shape(value: Any, depth: int = 10) -> Any:
    """Keys in order with their types, nested ``depth`` deep; lists by the shape of their first item."""
    if depth == 0:
        return type(value).__name__
    if isinstance(value, dict):
        return [(key, shape(item, depth - 1)) for key, item in value.items()]
    if isinstance(value, list):
        return [shape(value[0], depth - 1)] if value else []
    return type(value).__name__


def decode(cursor: str) -> dict[str, Any]:
    return json.loads(base64.b64decode(cursor))


class Api:
    def __init__(self, client: aiohttp.ClientSession, base: str, factory: N8nFactory) -> None:
        self.client, self.base, self.factory = client, base, factory

    async def get(self, path: str, key: str | None = N8N_KEY, **params: Any) -> tuple[int, Any]:
        headers = {"X-N8N-API-KEY": key} if key is not None else {}
        async with self.client.get(self.base + path, params=params, headers=headers) as response:
            return response.status, await response.json()

    def of_status(self, status: str, hidden: bool | None = None) -> str:
        """The id of one simulated execution in ``status`` (and hidden or not, if asked)."""
        return next(
            s.id for s in self.factory.sessions.values() if s.status == status and hidden in (None, self.factory.hidden(s))
        )


@pytest.fixture
async def api() -> AsyncIterator[Api]:
    clock = FakeClock()
    # Ten minutes at two executions a second: every status, waits asleep and resumed, runs in flight.
    factory = N8nFactory(clock, seed=3, rate=2.0, min_duration=1.0, max_duration=30.0, waiting_share=0.1)
    factory.backfill(600)
    runner = web.AppRunner(N8nSimulator(factory).app(), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        async with aiohttp.ClientSession() as client:
            yield Api(client, f"http://127.0.0.1:{runner.addresses[0][1]}{N8N_PREFIX}", factory)
    finally:
        await runner.cleanup()


def recorded_items() -> dict[str, dict[str, Any]]:
    """One recorded list item per status (canceled from 60 s later, as no run had timed out at t1)."""
    items: dict[str, dict[str, Any]] = {}
    for path in (T1 / "exec-list-default.json", T1 / "exec-status-running.json", T2 / "exec-status-canceled.json"):
        for item in recorded(path)["body"]["data"]:
            items.setdefault(item["status"], item)
    return items


async def test_the_generator_makes_executions_of_every_status(api):
    statuses = {s.status for s in api.factory.sessions.values()}
    assert statuses == {"success", "error", "crashed", "canceled", "running", "waiting"}
    assert set(recorded_items()) == statuses


async def test_list_items_have_the_recorded_fields_and_types_for_every_status(api):
    _, running = await api.get("/executions", status="running")
    api.factory.restart()  # so waiting executions are listed, as after the recorded restart
    status, body = await api.get("/executions", limit=250)
    assert status == 200 and shape(body)[1] == ("nextCursor", "str")
    items: dict[str, dict[str, Any]] = {}
    for item in body["data"] + running["data"]:
        items.setdefault(item["status"], item)
    for name, expected in recorded_items().items():
        assert shape(items[name]) == shape(expected), name
        assert items[name]["finished"] is (name == "success")
        for field in ("startedAt", "stoppedAt", "waitTill"):  # times as n8n writes them
            if expected[field] is not None:
                assert len(items[name][field]) == len(expected[field]) and items[name][field].endswith("Z")


@pytest.mark.parametrize("name", ["success", "error", "running", "waiting", "crashed", "canceled"])
async def test_one_execution_has_the_recorded_fields_and_types(api, name):
    expected = recorded(T1 / f"exec-one-{name}.json")["body"]
    status, body = await api.get(f"/executions/{api.of_status(name)}")
    assert status == 200 and shape(body) == shape(expected)
    assert [k for k in body if k not in expected] == []  # createdAt and deletedAt only here, as recorded


@pytest.mark.parametrize("name", ["error", "crashed", "canceled"])
async def test_the_error_text_is_there_only_with_include_data(api, name):
    expected = recorded(T1 / f"exec-one-{name}-includeData.json")["body"]
    execution = api.of_status(name)
    _, plain = await api.get(f"/executions/{execution}")
    _, full = await api.get(f"/executions/{execution}", includeData="true")
    assert "data" not in plain
    assert list(full) == list(expected)
    assert [k for k, _ in shape(full["data"])] == [k for k, _ in shape(expected["data"])]
    has_error = "error" in expected["data"]["resultData"]  # canceled: none (a timeout is no error)
    assert ("error" in full["data"]["resultData"]) is has_error
    if has_error:
        assert isinstance(full["data"]["resultData"]["error"]["message"], str)
    # The list carries it too with includeData, and the same keys for the workflow.
    listed = recorded(T1 / "exec-error-includeData.json")["body"]["data"][0]
    _, page = await api.get("/executions", status="error", includeData="true", limit=1)
    assert list(page["data"][0]) == list(listed)
    assert [k for k, _ in shape(page["data"][0]["workflowData"])] == [k for k, _ in shape(listed["workflowData"])]


def check_chain(pages: list[dict[str, Any]], limit: int) -> list[str]:
    """A cursor chain as n8n answers it; the ids it listed."""
    ids: list[str] = []
    for n, page in enumerate(pages):
        last = n == len(pages) - 1
        assert page["data"], "never an empty page"
        assert (page["nextCursor"] is None) is last
        if not last:
            assert len(page["data"]) == limit
            assert decode(page["nextCursor"]) == {"lastId": page["data"][-1]["id"], "limit": limit}
        ids += [item["id"] for item in page["data"]]
    assert [int(i) for i in ids] == sorted((int(i) for i in ids), reverse=True) and len(set(ids)) == len(ids)
    return ids


async def test_pages_follow_the_recorded_cursor(api):
    for folder, count in ((T1, 3), (T2, 4)):
        check_chain([recorded(folder / f"exec-page{n}.json")["body"] for n in range(count)], 4)
    pages: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": 50}
    for _ in range(100):  # bounded
        status, page = await api.get("/executions", **params)
        assert status == 200
        pages.append(page)
        if page["nextCursor"] is None:
            break
        params = {"limit": 7, "cursor": page["nextCursor"]}  # a cursor's own limit wins
    ids = check_chain(pages, 50)
    assert len(pages) > 2
    _, whole = await api.get("/executions", limit=0)  # 0: everything on one page, as recorded
    assert [item["id"] for item in whole["data"]] == ids and whole["nextCursor"] is None
    assert recorded(T1 / "exec-limit-0.json")["body"]["nextCursor"] is None


async def test_errors_are_answered_as_recorded(api):
    cases = {
        "exec-bad-cursor": {"cursor": "garbage"},
        "exec-limit-251": {"limit": 251},
        "exec-startedAfter": {"limit": 2, "startedAfter": "2030-01-01T00:00:00.000Z"},
        "exec-status-crashed": {"status": "crashed"},
        "exec-status-new": {"status": "new"},
    }
    for name, params in cases.items():
        expected = recorded(T1 / f"{name}.json")
        assert await api.get("/executions", **params) == (expected["http"], expected["body"]), name
    for name, key in (("exec-no-key", None), ("exec-bad-key", "nope")):
        expected = recorded(T1 / f"{name}.json")
        assert await api.get("/executions", key=key) == (expected["http"], expected["body"]), name
    expected = recorded(T1 / "exec-one-404.json")
    assert await api.get("/executions/999999") == (expected["http"], expected["body"])


async def test_the_status_filter_error_returns_crashed_too(api):
    expected = {item["status"] for item in recorded(T1 / "exec-status-error.json")["body"]["data"]}
    _, body = await api.get("/executions", status="error", limit=250)
    assert {item["status"] for item in body["data"]} == expected == {"error", "crashed"}
    for name in ("success", "canceled"):
        _, body = await api.get("/executions", status=name, limit=250)
        assert body["data"] and {item["status"] for item in body["data"]} == {name}


async def test_executions_in_the_process_are_hidden_as_recorded(api):
    # Recorded: 17 running and 16 waiting (put to wait by the live process) are in no list but their own.
    assert recorded(HIDDEN / "one-16.json")["body"]["status"] == "waiting"
    assert [i["id"] for i in recorded(HIDDEN / "status-waiting.json")["body"]["data"]] == ["3", "2", "1"]
    assert recorded(HIDDEN / "list-limit3.json")["body"]["data"][0]["id"] == "15"
    assert [i["id"] for i in recorded(HIDDEN / "status-running.json")["body"]["data"]] == ["17"]
    running, asleep = api.of_status("running"), api.of_status("waiting", hidden=True)
    _, listed = await api.get("/executions", limit=0)
    _, waiting = await api.get("/executions", status="waiting", limit=0)
    _, in_flight = await api.get("/executions", status="running", limit=0)
    listed_ids = {i["id"] for i in listed["data"]}
    assert running not in listed_ids and asleep not in listed_ids
    assert asleep not in {i["id"] for i in waiting["data"]}
    assert running in {i["id"] for i in in_flight["data"]}
    assert (await api.get(f"/executions/{asleep}"))[1]["status"] == "waiting"
    # A restart: the runs in flight crash, the waiting ones are listed.
    api.factory.restart()
    _, waiting = await api.get("/executions", status="waiting", limit=0)
    assert asleep in {i["id"] for i in waiting["data"]}
    assert (await api.get(f"/executions/{running}"))[1]["status"] == "crashed"
    _, listed = await api.get("/executions", limit=0)
    assert running in {i["id"] for i in listed["data"]}


async def test_a_resumed_execution_keeps_its_start_only_in_created_at(api):
    resumed = [s for s in api.factory.sessions.values() if api.factory.runs[s.id].resumed and not s.running]
    assert resumed
    _, body = await api.get(f"/executions/{resumed[0].id}")
    created, started, stopped = (parse_timestamp(body[k]) for k in ("createdAt", "startedAt", "stoppedAt"))
    assert started - created >= PERSISTED_WAIT and stopped >= started
    # The truth measures it from createdAt: the exporter must too, once it has seen it waiting.
    truth = api.factory.truth
    assert sum(truth.finished.values()) == sum(not s.running for s in api.factory.sessions.values())


async def test_workflows_page_with_an_offset_cursor_as_recorded(api):
    expected = recorded(T1 / "workflows.json")["body"]
    status, body = await api.get("/workflows")
    assert status == 200 and body["nextCursor"] is None
    assert shape(body["data"][0], depth=1) == shape(expected["data"][0], depth=1)  # nodes, settings: users' own
    assert {w["id"]: w["name"] for w in body["data"]} == N8N_WORKFLOWS
    page = recorded(T1 / "workflows-active.json")["body"]
    assert decode(page["nextCursor"]) == {"limit": 2, "offset": 2}
    _, first = await api.get("/workflows", active="true", limit=2)
    assert len(first["data"]) == 2 and decode(first["nextCursor"]) == {"limit": 2, "offset": 2}
    _, second = await api.get("/workflows", cursor=first["nextCursor"])
    assert len(second["data"]) == 1 and second["nextCursor"] is None
    assert {w["id"] for w in first["data"] + second["data"]} == set(N8N_WORKFLOWS)
