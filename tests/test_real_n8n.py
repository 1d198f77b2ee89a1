"""A real n8n 1.123.81 (tests/real_n8n.py) answers as the n8n provider will assume: newest first by
id, a base64 {lastId, limit} cursor, running and self-put waiting executions out of the lists, the
statuses it ends in, no time filter, error text only with includeData, startedAt overwritten on
resume. One scenario runs once (about two minutes): runs fired, n8n killed and restarted, runs
fired again, all awaited to their end; the tests read what it answered.

Where n8n is not installed or does not start, these tests fail with the reason: a real-server test
that is skipped proves nothing. ``tests/real_servers/install_n8n.sh`` installs it (.ci/run runs it)."""

from __future__ import annotations

import base64
import json
import signal
import time
from dataclasses import dataclass, field
from typing import Any, Iterator

import pytest

from agent_session_exporter.timeparse import parse_timestamp

from .real_n8n import ERROR_MESSAGE, PERSISTED_WAIT, Answer, RealN8n, install_dir, not_installed

LIST_FIELDS = ["id", "finished", "mode", "retryOf", "retrySuccessId", "status", "startedAt", "stoppedAt",
               "workflowId", "waitTill"]
DETAIL_FIELDS = LIST_FIELDS[:6] + ["createdAt", "startedAt", "stoppedAt", "deletedAt", "workflowId", "waitTill"]
CRASH_MESSAGE = "Workflow did not finish, possible out-of-memory issue"
#: What each kind of run ends as (``crash``: a 'running' run in flight when n8n was killed).
ENDS_AS = {"success": "success", "error": "error", "running": "success", "waiting": "success",
           "timeout": "canceled", "crash": "crashed"}


@dataclass
class Scenario:
    n8n: RealN8n
    ids: dict[str, list[str]] = field(default_factory=dict)
    #: Answers by name, as they came: "<phase>:<what>", phase "first" (before the kill) or "second".
    seen: dict[str, Answer] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    def fire(self, kind: str, as_kind: str | None = None) -> str:
        execution_id = self.n8n.fire(kind)
        self.ids.setdefault(as_kind or kind, []).append(execution_id)
        return execution_id

    def note(self, name: str, path: str, key: str | None = None, **params: Any) -> Answer:
        self.seen[name] = answer = self.n8n.get(path, key=key, **params)
        return answer

    def ids_in(self, name: str) -> list[str]:
        answer = self.seen[name]
        assert answer.status == 200, (name, answer)
        return [item["id"] for item in answer.body["data"]]

    def wait_status(self, execution_id: str, statuses: tuple[str, ...], timeout: float) -> None:
        self.n8n.wait_for(lambda: self.n8n.execution(execution_id)["status"] in statuses, timeout,
                          f"execution {execution_id} to be {'/'.join(statuses)}")


def run_scenario(n8n: RealN8n) -> Scenario:
    s = Scenario(n8n)
    began = time.monotonic()
    s.seconds["start"] = n8n.start()
    n8n.create_owner_and_key()
    n8n.create_workflows(running_seconds=20, timeout_seconds=2)
    # --- first process: two persisted waits, a run to be crashed, one success, one error ---------
    for _ in range(2):
        s.wait_status(s.fire("waiting"), ("waiting",), 30)
    for kind in ("success", "error"):
        s.wait_status(s.fire(kind), (kind,), 30)
    s.wait_status(s.fire("running", as_kind="crash"), ("running",), 30)
    s.note("first:list", "/executions", limit=250)
    s.note("first:running", "/executions", status="running")
    s.note("first:waiting", "/executions", status="waiting")
    s.note("first:one-waiting", f"/executions/{s.ids['waiting'][0]}")
    s.note("first:one-running", f"/executions/{s.ids['crash'][0]}")
    # --- kill -9, restart on the same folder: the run in flight crashes, the waits stay ----------
    s.seconds["restart"] = n8n.restart(signal.SIGKILL)
    s.note("second:waiting", "/executions", status="waiting")
    s.note("second:list-after-restart", "/executions", limit=250)
    # --- second process: runs that run for a while, then newer ones that end at once -------------
    for _ in range(2):
        s.wait_status(s.fire("running"), ("running",), 30)
    s.wait_status(s.fire("timeout"), ("canceled",), 30)  # cut after 2 s
    for kind in ("success", "error", "success"):
        s.wait_status(s.fire(kind), (kind,), 30)
    s.note("second:running", "/executions", status="running")
    s.note("second:list-while-running", "/executions", limit=250)
    # --- every run to its end (the waits resume PERSISTED_WAIT s after they were fired) -----------
    for kind, ids in s.ids.items():
        for execution_id in ids:
            s.wait_status(execution_id, (ENDS_AS[kind],), PERSISTED_WAIT + 90)
    s.seconds["scenario"] = time.monotonic() - began
    return s


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scenario]:
    reason = not_installed(install_dir())
    if reason:
        pytest.fail(reason)
    n8n = RealN8n(install_dir(), tmp_path_factory.mktemp("n8n"))
    try:
        s = run_scenario(n8n)
        print(f"real n8n: {len(n8n.fired)} executions; seconds: "
              + ", ".join(f"{k} {v:.1f}" for k, v in s.seconds.items()))
        yield s
    finally:
        n8n.stop()


def test_n8n_is_installed():
    assert not_installed(install_dir()) is None, not_installed(install_dir())


def test_n8n_ends_each_run_as_expected(scenario):
    truth = scenario.n8n.ground_truth()
    expected = {i: ENDS_AS[kind] for kind, ids in scenario.ids.items() for i in ids}
    assert truth == expected
    assert [int(i) for i, _ in scenario.n8n.fired] == list(range(1, len(truth) + 1))  # sequential ids


def test_lists_are_newest_first_by_id(scenario):
    n8n = scenario.n8n
    final = n8n.list_executions()
    assert [e["id"] for e in final] == sorted((i for i, _ in n8n.fired), key=int, reverse=True)
    for name, answer in scenario.seen.items():
        if answer.status == 200 and "data" in answer.body:
            ids = [int(e["id"]) for e in answer.body["data"]]
            assert ids == sorted(ids, reverse=True), name
    # Not by time: the waits, fired first, ended after the runs of the second process that end at once.
    stopped = {e["id"]: parse_timestamp(e["stoppedAt"]) for e in final}
    first = scenario.ids_in("first:list")
    at_once = [i for kind in ("success", "error", "timeout") for i in scenario.ids[kind] if i not in first]
    assert at_once and min(stopped[w] for w in scenario.ids["waiting"]) > max(stopped[i] for i in at_once)


def test_next_cursor_is_base64_of_last_id_and_limit_and_null_on_the_last_page(scenario):
    n8n = scenario.n8n
    pages = n8n.list_pages(limit=3)
    for page in pages[:-1]:
        assert len(page["data"]) == 3
        assert json.loads(base64.b64decode(page["nextCursor"])) == {"lastId": page["data"][-1]["id"], "limit": 3}
    assert pages[-1]["nextCursor"] is None and pages[-1]["data"]
    total = sum(len(p["data"]) for p in pages)
    exact = n8n.get("/executions", limit=total)  # a page that holds exactly the rest: no empty page after it
    assert exact.status == 200 and len(exact.body["data"]) == total and exact.body["nextCursor"] is None
    # A cursor carries its own limit: the one sent beside it is ignored.
    second = n8n.get("/executions", limit=1, cursor=pages[0]["nextCursor"])
    assert [e["id"] for e in second.body["data"]] == [e["id"] for e in pages[1]["data"]]
    assert n8n.get("/executions", limit=251).body == {"message": "request/query/limit must be <= 250"}
    assert n8n.get("/executions", cursor="garbage").body == {"message": "An invalid cursor was provided"}


def test_running_executions_are_hidden_from_every_list_but_status_running(scenario):
    crash, running = scenario.ids["crash"][0], scenario.ids["running"]
    assert scenario.ids_in("first:running") == [crash]
    assert crash not in scenario.ids_in("first:list")
    assert scenario.ids_in("second:running") == sorted(running, key=int, reverse=True)
    listed = scenario.ids_in("second:list-while-running")
    assert not set(running) & set(listed)
    # The newer runs that ended at once are listed before the older ones still running...
    newer = [i for i in listed if int(i) > max(int(r) for r in running)]
    assert len(newer) >= 3
    # ...which enter the list when they end, behind them.
    final = [e["id"] for e in scenario.n8n.list_executions()]
    assert all(final.index(r) > final.index(n) for r in running for n in newer)


def test_a_waiting_execution_put_to_wait_by_the_process_is_listed_only_after_a_restart(scenario):
    waiting = scenario.ids["waiting"]
    one = scenario.seen["first:one-waiting"]
    assert one.body["status"] == "waiting" and one.body["waitTill"] and one.body["stoppedAt"]
    assert not one.body["finished"]
    assert not set(waiting) & set(scenario.ids_in("first:waiting") + scenario.ids_in("first:list"))
    assert scenario.ids_in("second:waiting") == sorted(waiting, key=int, reverse=True)
    assert set(waiting) <= set(scenario.ids_in("second:list-after-restart"))


def test_statuses_and_the_status_filter(scenario):
    n8n = scenario.n8n
    crashed = scenario.ids["crash"][0]
    assert scenario.seen["first:one-running"].body["status"] == "running"
    assert {e["status"] for e in n8n.list_executions()} == {"success", "error", "crashed", "canceled"}
    assert {e["id"]: e["status"] for e in n8n.list_executions(status="error")} == {
        **{i: "error" for i in scenario.ids["error"]}, crashed: "crashed"}  # error returns crashed too
    for status in ("crashed", "new"):
        answer = n8n.get("/executions", status=status)
        assert answer.status == 400 and answer.body == {"message": "request/query/status must be equal to one of "
                                                        "the allowed values: canceled, error, running, success, waiting"}
    for execution in n8n.list_executions():
        assert execution["finished"] is (execution["status"] == "success")
        assert execution["mode"] == "webhook"


def test_there_is_no_time_filter(scenario):
    answer = scenario.n8n.get("/executions", limit=2, startedAfter="2030-01-01T00:00:00.000Z")
    assert (answer.status, answer.body) == (400, {"message": "Unknown query parameter 'startedAfter'"})


def test_error_text_only_with_include_data(scenario):
    n8n = scenario.n8n
    for execution in n8n.list_executions():
        assert list(execution) == LIST_FIELDS
    failed, crashed, canceled = scenario.ids["error"][0], scenario.ids["crash"][0], scenario.ids["timeout"][0]
    assert list(n8n.execution(failed)) == DETAIL_FIELDS
    error = n8n.execution(failed, include_data=True)["data"]["resultData"]
    assert error["error"]["message"] == f"{ERROR_MESSAGE} [line 1]" and error["lastNodeExecuted"] == "Step"
    assert n8n.execution(crashed, include_data=True)["data"]["resultData"]["error"]["message"] == CRASH_MESSAGE
    assert "error" not in n8n.execution(canceled, include_data=True)["data"]["resultData"]  # a timeout: no error
    listed = n8n.get("/executions", status="error", includeData="true", limit=1).body["data"][0]
    assert {"data", "workflowData", "customData"} <= set(listed) and "error" in listed["data"]["resultData"]


def test_a_resumed_execution_keeps_its_start_only_in_created_at(scenario):
    for execution_id in scenario.ids["waiting"]:
        one = scenario.n8n.execution(execution_id)
        created, started, stopped = (parse_timestamp(one[k]) for k in ("createdAt", "startedAt", "stoppedAt"))
        assert started - created >= PERSISTED_WAIT - 1  # startedAt: when it resumed
        assert stopped - started < 10
    timed_out = scenario.n8n.execution(scenario.ids["timeout"][0])
    assert 1.5 < parse_timestamp(timed_out["stoppedAt"]) - parse_timestamp(timed_out["startedAt"]) < 10


def test_the_key_is_required_and_unknown_ids_are_404(scenario):
    n8n = scenario.n8n
    assert (n8n.get("/executions", key="").status, n8n.get("/executions", key="").body) == (
        401, {"message": "'X-N8N-API-KEY' header required"})
    assert (n8n.get("/executions", key="nope").status, n8n.get("/executions", key="nope").body) == (
        401, {"message": "unauthorized"})
    assert (n8n.get("/executions/999999").status, n8n.get("/executions/999999").body) == (404, {"message": "Not Found"})
    workflows = n8n.get("/workflows", limit=250)  # the key's third scope: names for the ids
    assert {w["id"]: w["name"] for w in workflows.body["data"]} == {w.id: w.name for w in n8n.workflows.values()}
