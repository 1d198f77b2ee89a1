"""A real n8n 1.123.81 (tests/real_n8n.py) answers as the n8n provider will assume: newest first by
id, a base64 {lastId, limit} cursor, running and self-put waiting executions out of the lists, the
statuses it ends in, no time filter, error text only with includeData, startedAt overwritten on
resume; and the exporter, run as users run it with an n8n source, counts its executions exactly.
One scenario runs once (about two minutes): the exporter started, runs fired, the exporter killed
(SIGKILL) and started again on its state, both killed and n8n restarted, the exporter started
again, runs fired again, all awaited to their end; the tests read what n8n and the exporter answered.

Where n8n is not installed or does not start, these tests fail with the reason: a real-server test
that is skipped proves nothing. ``tests/real_servers/install_n8n.sh`` installs it (.ci/run runs it)."""

from __future__ import annotations

import base64
import json
import signal
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml

from agent_session_exporter.timeparse import parse_timestamp

from .helpers import total_of
from .real_exporter import ExporterProcess, Samples, summary
from .real_n8n import ERROR_MESSAGE, PERSISTED_WAIT, Answer, RealN8n, install_dir, not_installed

LIST_FIELDS = [
    "id",
    "finished",
    "mode",
    "retryOf",
    "retrySuccessId",
    "status",
    "startedAt",
    "stoppedAt",
    "workflowId",
    "waitTill",
]
DETAIL_FIELDS = LIST_FIELDS[:6] + ["createdAt", "startedAt", "stoppedAt", "deletedAt", "workflowId", "waitTill"]
CRASH_MESSAGE = "Workflow did not finish, possible out-of-memory issue"
#: What each kind of run ends as (``crash``: a 'running' run in flight when n8n was killed).
ENDS_AS = {
    "success": "success",
    "error": "error",
    "running": "success",
    "waiting": "success",
    "timeout": "canceled",
    "crash": "crashed",
}
#: n8n's final statuses and the exporter's outcomes (n8n.yaml's statuses.final).
OUTCOMES = {"success": "success", "error": "error", "crashed": "error", "canceled": "cancelled"}
SOURCE = "real-n8n"


@dataclass
class Scenario:
    n8n: RealN8n
    ids: dict[str, list[str]] = field(default_factory=dict)
    #: Answers by name, as they came: "<phase>:<what>", phase "first" (before the kill) or "second".
    seen: dict[str, Answer] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    exporter: ExporterProcess | None = None
    #: The exporter's /metrics by name, as scraped: "first", "restarted" (the same state), "final".
    metrics: dict[str, Samples] = field(default_factory=dict)

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
        self.n8n.wait_for(
            lambda: self.n8n.execution(execution_id)["status"] in statuses,
            timeout,
            f"execution {execution_id} to be {'/'.join(statuses)}",
        )


def exporter_for(n8n: RealN8n, folder: Path) -> ExporterProcess:
    """The exporter with one n8n source polling every 2 s, its state in ``folder``; the key from the
    environment, as a deployment passes it."""
    config = {
        "state_path": str(folder / "state.db"),
        "interval": 2,
        "sources": [
            {
                "name": SOURCE,
                "provider": "n8n",
                "base_url": n8n.api_url,
                "api_key": "${N8N_API_KEY}",
                "initial_lookback": "1h",
                "overlap": "5s",
                "timeout": 5,
                "discovery_interval": "5s",
            }
        ],
    }
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    return ExporterProcess(folder / "config.yaml", folder / "exporter.log", env={"N8N_API_KEY": n8n.api_key})


def counted(samples: Samples) -> tuple[float, float]:
    """(finished, active) of the n8n source."""
    return (
        total_of(samples, "agent_sessions_finished_total", source=SOURCE),
        total_of(samples, "agent_sessions_active", source=SOURCE),
    )


def run_scenario(s: Scenario, folder: Path) -> Scenario:
    n8n = s.n8n
    began = time.monotonic()
    s.seconds["start"] = n8n.start()
    n8n.create_owner_and_key()
    n8n.create_workflows(running_seconds=30, timeout_seconds=2)
    s.exporter = exporter = exporter_for(n8n, folder)
    exporter.start()
    # --- first process: a success, two persisted waits, a success and an error, a run to be crashed,
    # a third wait: the newest id, above every listed one -----------------------------------------
    s.wait_status(s.fire("success"), ("success",), 30)
    for _ in range(2):
        s.wait_status(s.fire("waiting"), ("waiting",), 30)
    for kind in ("success", "error"):
        s.wait_status(s.fire(kind), (kind,), 30)
    s.wait_status(s.fire("running", as_kind="crash"), ("running",), 30)
    s.wait_status(s.fire("waiting"), ("waiting",), 30)
    s.note("first:list", "/executions", limit=250)
    s.note("first:running", "/executions", status="running")
    s.note("first:waiting", "/executions", status="waiting")
    s.note("first:one-waiting", f"/executions/{s.ids['waiting'][0]}")
    s.note("first:one-running", f"/executions/{s.ids['crash'][0]}")
    # --- the exporter sees three ended, three or four active (three in no list); kill -9 and start
    # it again on its state: two more cycles count nothing again ----------------------------------
    seen = exporter.wait_for_samples(lambda m: counted(m)[0] == 3 and counted(m)[1] >= 3, 30, "3 finished, 3 active")
    s.metrics["first"] = exporter.after_more_cycles(seen, cycles=2)
    assert exporter.stop(signal.SIGKILL) == -signal.SIGKILL
    exporter.start()
    s.metrics["restarted"] = exporter.after_more_cycles(exporter.scrape() or {}, cycles=2)
    # --- kill -9 both (the exporter is down while n8n recovers: see test_the_exporter_counts_...),
    # restart n8n on the same folder: the run in flight crashes, the waits stay; the exporter again --
    assert exporter.stop(signal.SIGKILL) == -signal.SIGKILL
    s.seconds["restart"] = n8n.restart(signal.SIGKILL)
    exporter.start()
    s.note("second:one-crashed", f"/executions/{s.ids['crash'][0]}")
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
    s.seconds["n8n ended all"] = time.monotonic() - began
    # --- the exporter counts them all; two more cycles count nothing again ---------------------
    fired = len(n8n.fired)
    done = exporter.wait_for_samples(lambda m: counted(m) == (fired, 0), 60, f"{fired} finished, 0 active")
    s.seconds["exporter counted all"] = time.monotonic() - began
    s.metrics["final"] = exporter.after_more_cycles(done, cycles=2)
    assert exporter.stop() == 0
    s.seconds["scenario"] = time.monotonic() - began
    return s


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scenario]:
    reason = not_installed(install_dir())
    if reason:
        pytest.fail(reason)
    n8n = RealN8n(install_dir(), tmp_path_factory.mktemp("n8n"))
    s = Scenario(n8n)
    try:
        run_scenario(s, tmp_path_factory.mktemp("exporter"))
        print(
            f"real n8n: {len(n8n.fired)} executions; seconds: "
            + ", ".join(f"{k} {v:.1f}" for k, v in s.seconds.items())
            + "; exporter starts: "
            + ", ".join(f"{v:.1f}" for v in s.exporter.starts)
        )
        yield s
    finally:
        if s.exporter is not None:
            s.exporter.close()
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
    assert scenario.ids_in("second:waiting") == sorted(waiting, key=int, reverse=True), scenario.seen["second:waiting"]
    assert set(waiting) <= set(scenario.ids_in("second:list-after-restart")), scenario.seen["second:list-after-restart"]


def test_statuses_and_the_status_filter(scenario):
    n8n = scenario.n8n
    crashed = scenario.ids["crash"][0]
    assert scenario.seen["first:one-running"].body["status"] == "running"
    assert scenario.seen["second:one-crashed"].body["status"] == "crashed"  # recovered by the time n8n is ready
    assert {e["status"] for e in n8n.list_executions()} == {"success", "error", "crashed", "canceled"}
    assert {e["id"]: e["status"] for e in n8n.list_executions(status="error")} == {
        **{i: "error" for i in scenario.ids["error"]},
        crashed: "crashed",
    }  # error returns crashed too
    for status in ("crashed", "new"):
        answer = n8n.get("/executions", status=status)
        assert answer.status == 400 and answer.body == {
            "message": "request/query/status must be equal to one of "
            "the allowed values: canceled, error, running, success, waiting"
        }
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
        401,
        {"message": "'X-N8N-API-KEY' header required"},
    )
    assert (n8n.get("/executions", key="nope").status, n8n.get("/executions", key="nope").body) == (
        401,
        {"message": "unauthorized"},
    )
    assert (n8n.get("/executions/999999").status, n8n.get("/executions/999999").body) == (404, {"message": "Not Found"})
    workflows = n8n.get("/workflows", limit=250)  # the key's third scope: names for the ids
    assert {w["id"]: w["name"] for w in workflows.body["data"]} == {w.id: w.name for w in n8n.workflows.values()}


def finished_by(samples: Samples, *keys: str) -> dict[tuple[str, ...], float]:
    """The n8n source's finished counters summed by the ``keys`` labels (zeros left out)."""
    sums: Counter[tuple[str, ...]] = Counter()
    for (name, labels), value in samples.items():
        found = dict(labels)
        if name == "agent_sessions_finished_total" and found.get("source") == SOURCE and value:
            sums[tuple(found[k] for k in keys)] += value
    return dict(sums)


def test_the_exporter_counts_every_execution_once_as_n8n_ended_it(scenario):
    n8n, final = scenario.n8n, scenario.metrics["final"]
    truth = n8n.ground_truth()
    workflow_of = {i: n8n.workflows[kind].id for i, kind in n8n.fired}
    assert finished_by(final, "status", "outcome") == dict(Counter((s, OUTCOMES[s]) for s in truth.values()))
    assert finished_by(final, "workflow", "status") == dict(Counter((workflow_of[i], s) for i, s in truth.items()))
    assert total_of(final, "agent_sessions_active", source=SOURCE) == 0, summary(final)
    assert total_of(final, "agent_session_errors_total", source=SOURCE) == sum(OUTCOMES[s] == "error" for s in truth.values())
    assert total_of(final, "agent_session_duration_seconds_count", source=SOURCE) == len(truth)
    names = {
        dict(labels)["workflow"]: dict(labels)["workflow_name"]
        for (name, labels), _ in final.items()
        if name == "agent_session_workflow_info"
    }
    assert names == {w.id: w.name for w in n8n.workflows.values()}


def test_the_exporter_measures_a_resumed_wait_from_its_creation(scenario):
    """Every duration from the run's start as n8n's detail shows it: createdAt, which a resume keeps
    (startedAt follows createdAt by milliseconds for a run that never waited)."""
    n8n, final = scenario.n8n, scenario.metrics["final"]
    details = [n8n.execution(i) for i, _ in n8n.fired]
    expected = sum(parse_timestamp(d["stoppedAt"]) - parse_timestamp(d["createdAt"]) for d in details)
    assert expected > 2 * PERSISTED_WAIT  # the two waits are in it
    measured = total_of(final, "agent_session_duration_seconds_sum", source=SOURCE)
    assert measured == pytest.approx(expected, abs=0.1 * len(details))


def test_the_exporter_keeps_its_counts_across_a_sigkill(scenario):
    first, restarted = scenario.metrics["first"], scenario.metrics["restarted"]
    assert finished_by(first, "status", "outcome") == {("success", "success"): 2, ("error", "error"): 1}
    # The two waits between listed ids are in no list: ids missing from it, tracked as 'unlisted' until
    # looked up by id ('waiting' then).
    active = active_by_status(first)
    assert active.get("running") == 1 and set(active) <= {"running", "waiting", "unlisted"}, active
    assert active.get("waiting", 0) + active.get("unlisted", 0) >= 2, active
    assert finished_by(restarted, "status", "outcome") == finished_by(first, "status", "outcome")
    assert active_by_status(restarted) == active


@pytest.mark.xfail(
    strict=True,
    reason="id_gaps looks only between the lowest and highest listed ids: a hidden "
    "wait newer than every listed execution is not seen until it is listed (here: n8n's restart)",
)
def test_the_exporter_sees_a_hidden_wait_newer_than_every_listed_execution(scenario):
    assert sum(active_by_status(scenario.metrics["first"]).values()) == 4


def active_by_status(samples: Samples) -> dict[str, float]:
    return {
        dict(labels)["status"]: value
        for (name, labels), value in samples.items()
        if name == "agent_sessions_active" and dict(labels).get("source") == SOURCE and value
    }


def test_the_key_never_reaches_the_exporters_log_or_metrics(scenario):
    key = scenario.n8n.api_key
    assert key and key not in scenario.exporter.log_path.read_text()
    assert not [k for k in scenario.metrics["final"] if key in str(k)]
