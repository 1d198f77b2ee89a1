"""``--test-read SOURCE``: one bounded read of a configured source, against the simulators of every
provider shape served on loopback; in process for the output, as a subprocess for the command line
(exit codes, stderr, the state file)."""

from __future__ import annotations

import asyncio
import io
import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest
import yarl
from aiohttp import web

from agent_session_exporter.config import Config, parse_config
from agent_session_exporter.demo.runner import running_simulators
from agent_session_exporter.demo.server import HONEYHIVE_PROJECT, KAPSO_WORKFLOW_NAMES, PREFIXES, Simulators
from agent_session_exporter.logs import REDACTED, redactor
from agent_session_exporter.testread import read_source
from agent_session_exporter.testread.capture import redacted_body, redacted_target

from .helpers import ROOT

KEYS = {p: f"sk-live-{p}-7f3a9c41e2d8" for p in PREFIXES}
#: One source per provider shape (HoneyHive's three APIs each), as the demo has them.
SHAPES: dict[str, tuple[str, dict[str, Any]]] = {
    "t-whatabot": ("whatabot", {}),
    "t-dify": ("dify", {}),
    "t-syntropic": ("syntropic137", {}),
    "t-honeyhive": ("honeyhive", {"settle_after": "10s"}),
    "t-honeyhive-events": ("honeyhive", {"project": HONEYHIVE_PROJECT, "api": "events", "settle_after": "10s"}),
    "t-honeyhive-sessions": ("honeyhive", {"project": HONEYHIVE_PROJECT, "api": "sessions", "settle_after": "10s"}),
    "t-kapso": ("kapso", {}),
}


def config_dict(base_url: str, names: list[str] | None = None, **options: Any) -> dict[str, Any]:
    """The sources of ``SHAPES`` (or those named) pointing at the simulators, ``options`` on each."""
    sources = []
    for name, (provider, extra) in SHAPES.items():
        if names is not None and name not in names:
            continue
        entry = {
            "name": name,
            "provider": provider,
            "base_url": base_url + PREFIXES[provider],
            "initial_lookback": "1h",
            "page_size": 10,
            **extra,
            **options,
        }
        if provider != "syntropic137":
            entry.setdefault("api_key", KEYS[provider])
        sources.append(entry)
    return {"sources": sources}


@pytest.fixture
async def simulators():
    sim = Simulators(keys=KEYS)
    sim.backfill(120)  # sixty sessions each, some running, most ended; frozen (no ticks) while read
    async with running_simulators(sim, tick_every=None) as base_url:
        yield sim, base_url


async def read(config: Config, name: str, max_pages: int = 2, max_records: int = 20, form: str = "json") -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = await read_source(config, name, max_pages, max_records, form, out, err)
    return code, out.getvalue(), err.getvalue()


def assert_no_key(*texts: str) -> None:
    for text in texts:
        for key in KEYS.values():
            assert key not in text


@pytest.mark.parametrize("name", list(SHAPES))
async def test_each_provider_shape_is_read_mapped_and_judged(simulators, logs, name):
    sim, base_url = simulators
    provider = SHAPES[name][0]
    code, out, err = await read(parse_config(config_dict(base_url, [name]), {}), name, max_records=1000)
    assert code == 0, err
    doc = json.loads(out)
    assert doc["source"] == name and doc["provider"] == provider
    header = {"whatabot": "X-Api-Key: ", "kapso": "X-API-Key: ", "syntropic137": None}.get(provider, "Authorization: Bearer ")
    assert doc["auth"] == ("none" if header is None else header + REDACTED)
    requests = doc["requests"]
    assert 1 <= len(requests) <= 2 and sim.requests[provider] == len(requests)  # the page limit, 2
    assert requests[0]["target"].startswith(PREFIXES[provider] + "/")
    assert all(r["status"] == "200" and r["bytes"] > 0 and not r["retry"] for r in requests)
    assert [r["page"] for r in requests] == list(range(1, len(requests) + 1))
    items = doc["items"]
    assert items and sum(r["records"] for r in requests) == len(items)
    sessions = sim.factories[provider].sessions
    seen: set[str] = set()
    for item in items:
        session = sessions[item["id"]]
        ended = session.ended_at is not None
        if provider == "honeyhive":  # no status: an end time (a running session's last event too) settles
            ended = ended or session.last_event_at > session.started_at
            assert item["status"] == ("ended" if ended else "running")
            expected = "pending_settling" if ended else "pending_active"  # counted once seen unchanged again
        else:
            assert item["status"] == session.status
            expected = "new_final" if ended else "pending_active"
        assert item["verdict"] == expected or (item["verdict"] == "repeated" and item["id"] in seen), item
        assert item["phase"] == ("active" if not ended else "settling" if provider == "honeyhive" else "finished")
        if ended and provider != "honeyhive":
            assert item["outcome"] == session.outcome
            assert item["duration_seconds"] == pytest.approx(session.ended_at - session.started_at, abs=1.0)
        seen.add(item["id"])
        _assert_figures(provider, item, session)
    counts = doc["would_count"]
    for verdict in ("new_final", "pending_active", "pending_settling", "repeated"):
        assert counts[verdict] == sum(item["verdict"] == verdict for item in items), verdict
    if provider == "honeyhive":  # how it reads, and what of that is deprecated, as the exporter logs it at start
        assert doc["notes"][0].startswith("HoneyHive sessions read with ") and len(doc["notes"]) == (
            1 if name == "t-honeyhive" else 2
        )
    else:
        assert [note.split(":")[0] for note in doc["notes"]] == (["kapso executions"] if provider == "kapso" else [])
    if name in ("t-honeyhive", "t-honeyhive-events"):  # their answers carry the sessions' child events
        assert sum(r["not_sessions"] for r in requests) > 0
    assert_no_key(out, err, logs.stream.getvalue())


def _assert_figures(provider: str, item: dict[str, Any], session: Any) -> None:
    if session.ended_at is None:
        return
    if provider == "whatabot":
        assert item["warnings"] == session.warnings
    elif provider == "dify":
        assert item["tokens"] == ({"total": session.tokens["total"]} if session.tokens["total"] else {})
    elif provider == "honeyhive":
        assert item["tokens"] == session.tokens and item["cost_usd"] == pytest.approx(session.cost)
        assert item["model"] == session.model and item["error_text"] == bool(session.error)
    elif provider == "syntropic137":
        assert item["cost_usd"] == pytest.approx(session.cost) and item["workflow"] == "wf-1"
    elif provider == "kapso":
        assert item["workflow_name"] == KAPSO_WORKFLOW_NAMES[item["workflow"]]
        assert (item["error_message"] == "simulated failure") == (session.outcome == "error")


async def test_the_text_form_shows_each_request_page_item_and_the_count_aligned(simulators):
    sim, base_url = simulators
    config = parse_config(config_dict(base_url, ["t-whatabot"], page_size=5), {})
    code, out, _ = await read(config, "t-whatabot", max_pages=2, max_records=8, form="text")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "test read of source 't-whatabot' (provider whatabot)"
    assert lines[1] == f"  base_url  {base_url}/whatabot/api/v1"
    assert lines[2] == f"  auth      X-Api-Key: {REDACTED}"
    assert lines[4] == "  limits    2 pages, 8 records"
    query = "size=5&orderBy=startedAt&direction=DESC&dateRange=last7days"
    assert f"page 1  GET /whatabot/api/v1/sessions/logs?{query}&page=0" in lines
    assert f"page 2  GET /whatabot/api/v1/sessions/logs?{query}&page=1" in lines
    answers = [
        line
        for line in lines
        if re.fullmatch(
            r"  200 · \d+ bytes · \d+\.\d{3} s · 5 rows: 5 records, "
            r"0 refused, 0 not sessions",
            line,
        )
    ]
    assert len(answers) == 2
    heading = next(line for line in lines if line.lstrip().startswith("ID "))
    newest = sorted(sim.factories["whatabot"].sessions.values(), key=lambda s: s.started_at, reverse=True)[:8]
    for session in newest:
        row = next(line for line in lines if line.startswith(f"    {session.id}  "))
        verdict = "counted (new final)" if session.ended_at is not None else "pending (active)"
        assert row.endswith(verdict) and row.index(verdict) == heading.index("VERDICT")  # aligned
        assert row.index(session.status) == heading.index("STATUS")
    assert "    ... 2 more records not shown (--test-read.max-records 8)" in lines
    assert "read: stopped at the page limit (--test-read.max-pages 2); the exporter would read on" in lines
    assert sim.requests["whatabot"] == 2
    finished = sum(s.ended_at is not None for s in newest)
    counted = next(line for line in lines if line.startswith("  counted"))
    assert re.match(rf"  counted +{finished}   ", counted)
    assert re.match(
        rf"  pending +{8 - finished}   active {8 - finished}$", next(line for line in lines if line.startswith("  pending"))
    )
    assert_no_key(out)


async def test_the_page_limit_is_the_number_of_requests_sent(simulators):
    sim, base_url = simulators
    config = parse_config(config_dict(base_url, ["t-whatabot", "t-kapso"], page_size=5), {})
    code, out, _ = await read(config, "t-whatabot", max_pages=3, max_records=1000)
    doc = json.loads(out)
    assert code == 0 and doc["read"] == "page_limit"
    assert sim.requests["whatabot"] == len(doc["requests"]) == 3 and len(doc["items"]) == 15
    code, out, _ = await read(config, "t-kapso", max_pages=1, max_records=1000)  # its workflows' list is a page
    doc = json.loads(out)
    assert code == 0 and doc["read"] == "page_limit" and sim.requests["kapso"] == 1
    assert doc["requests"][0]["target"] == "/kapso/platform/v1/workflows?limit=100" and doc["items"] == []
    assert doc["requests"][0]["rows"] is None


async def test_the_record_limit_asks_for_no_page_past_it(simulators):
    sim, base_url = simulators
    config = parse_config(config_dict(base_url, ["t-whatabot"], page_size=5), {})
    code, out, _ = await read(config, "t-whatabot", max_pages=10, max_records=3)
    doc = json.loads(out)
    assert code == 0 and doc["read"] == "record_limit"
    assert sim.requests["whatabot"] == 1 and len(doc["items"]) == 3
    assert doc["requests"][0]["records"] == 5 and doc["requests"][0]["records_not_shown"] == 2
    assert sum(doc["would_count"][v] for v in ("new_final", "pending_active")) == 3  # of the records shown


async def test_a_read_within_the_limits_is_complete():
    sim = Simulators(keys=KEYS)
    sim.backfill(10)
    async with running_simulators(sim, tick_every=None) as base_url:
        config = parse_config(config_dict(base_url, ["t-whatabot"], page_size=100), {})
        code, out, _ = await read(config, "t-whatabot", max_pages=2, max_records=100)
    doc = json.loads(out)
    assert code == 0 and doc["read"] == "complete" and sim.requests["whatabot"] == 1
    assert len(doc["items"]) == len(sim.factories["whatabot"].sessions) > 0


async def test_a_retry_is_shown_and_is_no_page_of_its_own(simulators):
    sim, base_url = simulators
    answered: list[int] = []

    def once_unavailable(request: web.Request) -> web.Response | None:
        answered.append(1)
        return web.json_response({"error": "busy"}, status=503) if len(answered) == 1 else None

    sim.faults["whatabot"] = once_unavailable
    config = parse_config(config_dict(base_url, ["t-whatabot"], page_size=5, retries=1), {})
    code, out, _ = await read(config, "t-whatabot", max_pages=1, max_records=1000, form="text")
    assert code == 0
    lines = out.splitlines()
    first = lines.index(
        "page 1  GET /whatabot/api/v1/sessions/logs?size=5&orderBy=startedAt&direction=DESC&dateRange=last7days&page=0"
    )
    assert re.fullmatch(r"  503 · \d+ bytes · \d+\.\d{3} s", lines[first + 1])
    assert lines[first + 2] == lines[first] + " (retry)"
    assert lines[first + 3].startswith("  200 · ") and lines[first + 3].endswith("5 rows: 5 records, 0 refused, 0 not sessions")
    assert "  requests 2 (retries 1) · bytes " in "\n".join(lines)
    assert sim.requests["whatabot"] == 2


async def test_refused_items_say_why_and_secrets_in_upstream_text_are_redacted(simulators):
    sim, base_url = simulators

    def mangle(payload: dict[str, Any]) -> dict[str, Any]:
        rows = [row for row in payload["data"] if row["workflow_run"]]
        del rows[0]["workflow_run"]["status"]
        rows[1]["workflow_run"].update(
            status="failed",
            finished_at=rows[1]["workflow_run"]["created_at"] + 2,
            error=f"upstream said: invalid key {KEYS['dify']}",
        )
        return payload

    sim.mutators["dify"] = mangle
    config = parse_config(config_dict(base_url, ["t-dify"]), {})
    for form in ("json", "text"):
        code, out, err = await read(config, "t-dify", max_pages=1, max_records=1000, form=form)
        assert code == 0
        assert_no_key(out, err)
        if form == "json":
            doc = json.loads(out)
            assert doc["refused"] == [{"page": 1, "reason": "missing_field", "id": doc["refused"][0]["id"]}]
            assert doc["refused"][0]["id"].startswith("log-")  # the row's own id
            failed = next(item for item in doc["items"] if item["error_text"])
            assert failed["error_message"] == f"upstream said: invalid key {REDACTED}"
            assert failed["verdict"] == "new_final" and failed["outcome"] == "error"
        else:
            assert any(re.fullmatch(r"    refused  missing_field  id log-\S+", line) for line in out.splitlines())
            assert f'error "upstream said: invalid key {REDACTED}"' in out
            assert re.search(r"^  refused +1   missing_field 1$", out, re.M)


async def test_a_read_failing_midway_shows_what_it_read_and_counts_nothing(simulators):
    sim, base_url = simulators
    sim.faults["whatabot"] = lambda request: (
        web.json_response({"error": "boom"}, status=500) if request.query["page"] == "1" else None
    )
    config = parse_config(config_dict(base_url, ["t-whatabot"], page_size=5, retries=0), {})
    code, out, err = await read(config, "t-whatabot", max_pages=3, max_records=1000)
    doc = json.loads(out)
    assert code == 1 and err == "test-read failed: upstream request failed: GET /sessions/logs: HTTP 500\n"
    assert [r["status"] for r in doc["requests"]] == ["200", "500"] and sim.requests["whatabot"] == 2
    assert doc["read"] == "failed" and doc["error"] == err[len("test-read failed: ") : -1]
    assert len(doc["items"]) == 5 and {item["verdict"] for item in doc["items"]} == {None}
    assert doc["would_count"] is None  # a failed cycle counts nothing


def test_credentials_in_a_url_or_a_body_are_never_shown():
    secret = "sk-url-0123456789"
    redactor.set_secrets([secret])
    try:
        url = yarl.URL(f"http://h/api/{secret}/runs?api_key=plain&page=2&q=x{secret}&token=t1")
        assert redacted_target(url) == f"/api/{REDACTED}/runs?api_key={REDACTED}&page=2&q=x{REDACTED}&token={REDACTED}"
        body = json.dumps({"filters": [{"password": "p"}], "note": f"key {secret}", "page": 1}).encode()
        assert redacted_body(body) == f'{{"filters":[{{"password":"{REDACTED}"}}],"note":"key {REDACTED}","page":1}}'
        assert redacted_body(b"not json " + secret.encode()) == f"not json {REDACTED}"
    finally:
        redactor.set_secrets([])


async def test_an_unknown_source_is_refused_by_name(simulators):
    _, base_url = simulators
    code, out, err = await read(parse_config(config_dict(base_url, ["t-dify", "t-kapso"]), {}), "t-nope")
    assert code == 2 and out == ""
    assert err == "test-read: no source named 't-nope' in the config (its sources: t-dify, t-kapso)\n"


# --- the command line ---------------------------------------------------------------------------------


async def cli(*args: str) -> tuple[int, str, str]:
    """The command as users run it, while the simulators go on serving in this event loop."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "agent_session_exporter",
        *args,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), 60)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def write_config(path: Path, config: dict[str, Any]) -> str:
    path.write_text(json.dumps(config))  # JSON is YAML
    return str(path)


async def test_the_command_reads_without_opening_the_state_file_or_serving(simulators, tmp_path):
    sim, base_url = simulators
    state = tmp_path / "state.db"
    state.write_bytes(b"not a state file: a store that opened it would refuse it")
    before = state.stat().st_mtime_ns
    config = write_config(tmp_path / "c.yaml", {"state_path": str(state), **config_dict(base_url, ["t-kapso"])})
    code, out, err = await cli(
        "--config.file",
        config,
        "--test-read",
        "t-kapso",
        "--test-read.max-pages",
        "2",
        "--test-read.format",
        "json",
        "--log.level",
        "debug",
    )
    assert code == 0, err
    doc = json.loads(out)
    assert [r["target"].split("?")[0] for r in doc["requests"]] == [
        "/kapso/platform/v1/workflows",
        f"/kapso/platform/v1/workflows/{doc['items'][0]['workflow']}/executions",
    ]
    assert sim.requests["kapso"] == 2 and len(doc["items"]) == 10  # the second page's ten, the default 20 not reached
    assert state.stat().st_mtime_ns == before and state.read_bytes().startswith(b"not a state file")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.yaml", "state.db"]  # no -wal, no -shm
    assert "listening" not in err
    assert_no_key(out, err)


async def test_a_missing_state_file_is_not_created(simulators, tmp_path):
    _, base_url = simulators
    state = tmp_path / "state.db"
    config = write_config(tmp_path / "c.yaml", {"state_path": str(state), **config_dict(base_url, ["t-dify"])})
    code, out, err = await cli("--config.file", config, "--test-read", "t-dify")
    assert code == 0, err
    assert out.startswith("test read of source 't-dify' (provider dify)\n") and "would count" in out
    assert not state.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["c.yaml"]


async def test_refused_credentials_exit_1_with_one_line(simulators, tmp_path):
    _, base_url = simulators
    wrong = "sk-wrong-5d1e0c7b9a"
    config = write_config(tmp_path / "c.yaml", config_dict(base_url, ["t-whatabot"], api_key=wrong))
    code, out, err = await cli("--config.file", config, "--test-read", "t-whatabot", "--log.level", "warn")
    assert code == 1
    assert err.splitlines() == [
        "test-read failed: credentials refused by the upstream API (GET /sessions/logs: "
        "HTTP 401: the credentials were refused); check api_key / basic_auth"
    ]
    assert re.search(r"^  401 · \d+ bytes · \d+\.\d{3} s$", out, re.M)
    assert "read: failed: credentials refused" in out and "would count" not in out
    assert wrong not in out + err


async def test_an_http_error_exits_1_with_one_line(simulators, tmp_path):
    sim, base_url = simulators
    sim.faults["syntropic137"] = lambda request: web.json_response({"detail": "boom"}, status=500)
    config = write_config(tmp_path / "c.yaml", config_dict(base_url, ["t-syntropic"], retries=1))
    code, out, err = await cli("--config.file", config, "--test-read", "t-syntropic", "--log.level", "warn")
    assert code == 1
    assert err.splitlines() == ["test-read failed: upstream request failed: GET /sessions: HTTP 500"]
    assert sim.requests["syntropic137"] == 2 and out.count("  500 · ") == 2 and "(retry)" in out


async def test_a_timeout_exits_1_with_one_line(simulators, tmp_path):
    sim, base_url = simulators
    release = asyncio.Event()

    async def hang(request: web.Request) -> None:
        await release.wait()  # answered normally once the test is over

    sim.faults["honeyhive"] = hang
    config = write_config(tmp_path / "c.yaml", config_dict(base_url, ["t-honeyhive"], retries=0, timeout="0.2s"))
    try:
        code, out, err = await cli("--config.file", config, "--test-read", "t-honeyhive", "--log.level", "warn")
    finally:
        release.set()
    assert code == 1
    assert err.splitlines() == ["test-read failed: upstream request failed: POST /v1/events/search: timed out after 0.2s"]
    assert re.search(r"^  timeout · \d+\.\d{3} s$", out, re.M)
    assert_no_key(out, err)


async def test_limits_must_be_positive(tmp_path):
    config = write_config(tmp_path / "c.yaml", config_dict("http://127.0.0.1:1", ["t-dify"]))
    code, _, err = await cli("--config.file", config, "--test-read", "t-dify", "--test-read.max-pages", "0")
    assert code == 2 and "--test-read.max-pages: must be a whole number of at least 1" in err
