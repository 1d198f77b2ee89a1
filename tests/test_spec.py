"""The provider spec language: loading (file:line errors), the published schema, user specs, and each
component read through a real poller (aioresponses serves the pages)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from aioresponses import CallbackResult, aioresponses

from agent_session_exporter.config import ConfigError, load_config, parse_config
from agent_session_exporter.read.spec.load import BUILTIN_DIR, SpecError, builtin_specs, load_spec_text, spec_schema_text

from .helpers import BASE, KEY, Harness, Upstream, iso_ms

ROOT = Path(__file__).resolve().parent.parent
T0 = 1_780_000_000.0

#: A small platform in the spec language: calls with a status that ends and a reason deciding how.
CALLS_SPEC: dict[str, Any] = {
    "spec_version": 1,
    "name": "calls",
    "auth": {"kind": "header", "header": "X-Token"},
    "page_size": {"default": 2, "max": 50},
    "options": {"assistant": {"type": "string", "description": "one assistant's calls"}},
    "requester": {"path": "/calls", "query": {"limit": "{page_size}", "assistantId": "{options.assistant}", "sort": "desc"}},
    "paginator": {"kind": "page_increment", "parameter": "page", "start": 1, "more_flag": "has_more"},
    "record_selector": {"path": "data"},
    "incremental": {"since_parameter": "createdAfter", "format": "milliseconds"},
    "fields": {
        "id": {"path": "id", "required": True},
        "status": {"path": "status", "required": True},
        "started_at": {"path": "createdAt", "required": True},
        "finished_at": "endedAt",
        "cost": {"path": "costCents", "scale": 0.01},
        "tokens": {"input": "usage.in", "output": "usage.out"},
        "error_text": "error",
        "workflow_id": ["assistant.id", "assistantId"],
        "workflow_name": "assistant.name",
    },
    "statuses": {
        "active": ["queued", "in-progress"],
        "final": {
            "ended": {
                "outcome": "success",
                "rules": [
                    {"field": "endedReason", "matches": "^(pipeline|assistant)-error", "outcome": "error"},
                    {"field": "endedReason", "in": ["silence-timed-out", "exceeded-max-duration"], "outcome": "timeout"},
                ],
            },
            "failed": "error",
        },
    },
    "lookup": {"path": "/calls/{session_id}", "record": ["call", ""]},
}


def call(
    n: int,
    status: str = "ended",
    reason: str | None = "customer-ended-call",
    created: float = T0 - 100,
    length: float = 30.0,
    **extra: Any,
) -> dict[str, Any]:
    return {
        "id": f"call-{n}",
        "status": status,
        "createdAt": iso_ms(created),
        "endedAt": None if status in ("queued", "in-progress") else iso_ms(created + length),
        "endedReason": reason,
        "costCents": 125,
        "usage": {"in": 100, "out": 20},
        "assistant": {"id": "as-1", "name": "Support bot"},
        **extra,
    }


def custom_source(tmp_path: Path, spec: dict[str, Any] | None = None, **overrides: Any) -> Any:
    path = tmp_path / "calls.yaml"
    path.write_text(yaml.safe_dump(spec or CALLS_SPEC))
    entry = {"name": "calls-src", "provider": "custom", "spec_file": str(path), "base_url": BASE, "api_key": KEY, **overrides}
    return parse_config({"sources": [entry]}, {}).sources[0]


# --- loading --------------------------------------------------------------------------------------------


def test_errors_name_file_line_and_key():
    text = (
        "spec_version: 1\nname: x\nrequester:\n  path: /a\n  colour: red\n"
        "paginator: {kind: cursor}\nfields:\n  id: id\n  started_at: t\nstatuses: {final: {done: success}}\n"
    )
    with pytest.raises(SpecError) as caught:
        load_spec_text(text, "x.yaml")
    lines = str(caught.value).splitlines()
    assert "x.yaml:5: requester.colour: unknown key" in lines
    assert any(line.startswith("x.yaml:6: paginator") and "token_path or next_url_path" in line for line in lines)
    assert len(lines) == 2


def test_duplicate_keys_are_refused_with_their_line():
    with pytest.raises(SpecError, match=r"^x\.yaml:3: name: duplicate key$"):
        load_spec_text("spec_version: 1\nname: a\nname: b\n", "x.yaml")


def test_bad_yaml_names_line_and_column_never_the_text():
    with pytest.raises(SpecError) as caught:
        load_spec_text("name: [sk-secret-value\n", "x.yaml")
    assert str(caught.value).startswith("x.yaml:2:") and "sk-secret-value" not in str(caught.value)


def test_unknown_placeholders_and_unknown_statuses_overlap_are_refused():
    spec = json.loads(json.dumps(CALLS_SPEC))
    spec["requester"]["query"]["x"] = "{options.nope}"
    with pytest.raises(SpecError, match="unknown placeholder {options.nope}"):
        load_spec_text(yaml.safe_dump(spec), "s.yaml")
    spec = json.loads(json.dumps(CALLS_SPEC))
    spec["statuses"]["active"].append("failed")
    with pytest.raises(SpecError, match="active and final at once: failed"):
        load_spec_text(yaml.safe_dump(spec), "s.yaml")


def test_the_published_spec_schema_is_current_and_every_builtin_spec_follows_it():
    assert (ROOT / "spec.schema.json").read_text() == spec_schema_text(), (
        "regenerate: agent-session-exporter --spec.schema > spec.schema.json"
    )
    schema = json.loads(spec_schema_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    paths = sorted(BUILTIN_DIR.glob("*.yaml"))
    assert {p.stem for p in paths} == set(builtin_specs()) and paths
    for path in paths:
        jsonschema.validate(yaml.safe_load(path.read_text()), schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**CALLS_SPEC, "paginator": {"kind": "scroll"}}, schema)


# --- user specs ------------------------------------------------------------------------------------------


def test_a_user_spec_file_is_a_source_labelled_with_the_spec_name(tmp_path):
    source = custom_source(tmp_path, options={"assistant": "as-1"})
    assert source.provider == "calls" and source.page_size == 2 and source.options == {"assistant": "as-1"}


def test_a_relative_spec_file_is_read_beside_the_config(tmp_path):
    (tmp_path / "specs").mkdir()
    (tmp_path / "specs" / "calls.yaml").write_text(yaml.safe_dump(CALLS_SPEC))
    (tmp_path / "config.yaml").write_text(
        yaml.safe_dump(
            {"sources": [{"name": "c", "provider": "custom", "spec_file": "specs/calls.yaml", "base_url": BASE, "api_key": KEY}]}
        )
    )
    assert load_config(tmp_path / "config.yaml").sources[0].provider == "calls"


def test_an_inline_spec_works_as_a_file_does():
    source = parse_config(
        {"sources": [{"name": "c", "provider": "custom", "spec": CALLS_SPEC, "base_url": BASE, "api_key": KEY}]}, {}
    ).sources[0]
    assert source.provider == "calls"


@pytest.mark.parametrize(
    "change, message",
    [
        ({"options": {"colour": "red"}}, "options: unknown option colour"),
        ({"page_size": 500}, "page_size: at most 50"),
        ({"api_key": None}, "api_key: required by spec calls"),
    ],
)
def test_a_user_source_is_checked_against_its_spec(tmp_path, change, message):
    with pytest.raises(ConfigError, match=message):
        custom_source(tmp_path, **change)


def test_a_user_spec_may_not_take_a_builtin_name(tmp_path):
    with pytest.raises(ConfigError, match="name syntropic137 is a built-in provider's"):
        custom_source(tmp_path, {**CALLS_SPEC, "name": "syntropic137"})


def test_errors_in_a_user_spec_file_name_its_line(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("spec_version: 1\nname: broken\nrequester: {path: sessions}\n")
    with pytest.raises(ConfigError) as caught:
        parse_config({"sources": [{"name": "c", "provider": "custom", "spec_file": str(path), "base_url": BASE}]}, {})
    assert f"{path}:3: requester.path: must start with /" in str(caught.value)


# --- reading -------------------------------------------------------------------------------------------


def serve_calls(calls: list[dict[str, Any]], page_size: int = 2):
    def serve(path: str, params: dict[str, str]) -> Any:
        if path.startswith("/calls/"):
            found = [c for c in calls if c["id"] == path.rsplit("/", 1)[1]]
            return {"call": found[0]} if found else CallbackResult(status=404, payload={})
        page = int(params["page"])
        chunk = calls[(page - 1) * page_size : page * page_size]
        return {"data": chunk, "has_more": page * page_size < len(calls)}

    return Upstream(serve)


async def test_a_declared_source_counts_once_with_rules_scales_and_paths(tmp_path, http_session, clock):
    calls = [
        call(1),
        call(2, reason="pipeline-error-openai-500", created=T0 - 90),
        call(3, reason="silence-timed-out", created=T0 - 80),
        call(4, status="in-progress", created=T0 - 70),
    ]
    calls.reverse()  # newest first
    upstream = serve_calls(calls)
    harness = Harness(custom_source(tmp_path, options={"assistant": "as-1"}), http_session, clock)
    with aioresponses() as mocked:
        mocked.get(Upstream.pattern(), callback=upstream, repeat=True)
        assert await harness.poller.run_cycle()
        assert await harness.poller.run_cycle()
    assert harness.finished(outcome="success") == 1 and harness.finished(outcome="error") == 1
    assert harness.finished(outcome="timeout") == 1
    assert harness.value("agent_sessions_active", workflow="as-1") == 1
    assert harness.value("agent_session_cost_usd_total") == pytest.approx(3 * 1.25)
    assert harness.value("agent_session_tokens_total", token_type="input") == 300
    _, params, headers = upstream.calls[0]
    assert params["assistantId"] == "as-1" and params["limit"] == "2" and params["sort"] == "desc"
    assert params["createdAfter"].isdigit() and headers["X-Token"] == KEY


async def test_a_pending_session_is_looked_up_by_its_detail_path(tmp_path, http_session, clock):
    calls = [call(7, status="in-progress", created=T0 - 3600)]
    ended = call(7, reason="assistant-error", created=T0 - 3600)
    upstream = serve_calls(calls)
    harness = Harness(custom_source(tmp_path), http_session, clock)
    with aioresponses() as mocked:
        mocked.get(Upstream.pattern(), callback=upstream, repeat=True)
        assert await harness.poller.run_cycle()
        calls[:] = [call(8, created=T0 + 20)]  # the list no longer shows call-7: only its lookup can

        def serve(path: str, params: dict[str, str]) -> Any:
            return {"call": ended} if path == "/calls/call-7" else {"data": calls, "has_more": False}

        upstream.serve = serve
        for _ in range(3):
            clock.advance(30)
            assert await harness.poller.run_cycle()
    assert harness.finished(outcome="error") == 1 and harness.finished(outcome="success") == 1
    assert [path for path, _, _ in upstream.calls].count("/calls/call-7") == 1


def variant(**changes: Any) -> dict[str, Any]:
    spec = json.loads(json.dumps(CALLS_SPEC))
    spec.update(changes)
    return spec


async def poll_all(harness: Harness, serve: Any, cycles: int = 1) -> Upstream:
    upstream = Upstream(serve)
    with aioresponses() as mocked:
        mocked.get(Upstream.pattern(), callback=upstream, repeat=True)
        mocked.post(Upstream.pattern(), callback=upstream, repeat=True)
        for _ in range(cycles):
            assert await harness.poller.run_cycle()
    return upstream


async def test_offset_paging_reads_until_a_short_page(tmp_path, http_session, clock):
    calls = [call(n, created=T0 - 10 * n) for n in range(1, 6)]
    spec = variant(paginator={"kind": "offset_increment", "parameter": "skip"})
    harness = Harness(custom_source(tmp_path, spec), http_session, clock)
    upstream = await poll_all(harness, lambda path, p: {"data": calls[int(p["skip"]) : int(p["skip"]) + 2]})
    assert harness.finished() == 5 and [p["skip"] for _, p, _ in upstream.calls] == ["0", "2", "4"]


async def test_cursor_tokens_are_followed_and_a_repeated_token_ends_the_walk(tmp_path, http_session, clock):
    calls = [call(n, created=T0 - 10 * n) for n in range(1, 6)]
    spec = variant(paginator={"kind": "cursor", "parameter": "after", "token_path": "paging.next"})

    def serve(path: str, params: dict[str, str]) -> Any:
        start = int(params.get("after", 0))
        return {"data": calls[start : start + 2], "paging": {"next": str(min(start + 2, 4))}}

    harness = Harness(custom_source(tmp_path, spec), http_session, clock)
    upstream = await poll_all(harness, serve)
    assert harness.finished() == 5
    assert [p.get("after") for _, p, _ in upstream.calls] == [None, "2", "4"]


async def test_a_next_url_is_followed_only_on_the_sources_own_origin(tmp_path, http_session, clock):
    calls = [call(n, created=T0 - 10 * n) for n in range(1, 5)]
    spec = variant(paginator={"kind": "cursor", "next_url_path": "links.next"})

    def serve(path: str, params: dict[str, str]) -> Any:
        if "cursor" not in params:
            return {"data": calls[:2], "links": {"next": f"{BASE}/calls?cursor=c2&limit=2"}}
        return {"data": calls[2:], "links": {"next": "https://elsewhere.example/calls?cursor=c3"}}

    harness = Harness(custom_source(tmp_path, spec), http_session, clock)
    upstream = await poll_all(harness, serve)
    assert harness.finished() == 4 and len(upstream.calls) == 2  # the foreign URL is never asked
    assert upstream.calls[1][1] == {"cursor": "c2", "limit": "2"}
    assert harness.value("agent_session_exporter_invalid_records_total", reason="next_url_elsewhere") == 1


async def test_a_lookup_by_id_filter_refuses_an_answer_that_ignored_it(tmp_path, http_session, clock):
    spec = variant(lookup={"path": "/calls", "query": {"id": "{session_id}"}, "list": True})
    calls = [call(7, status="in-progress", created=T0 - 3600)]
    state = {"cycle": 0}

    def serve(path: str, params: dict[str, str]) -> Any:
        if "id" in params:
            return {"data": [call(9)], "has_more": False}  # another session: the filter was ignored
        return {"data": calls if state["cycle"] == 0 else [call(8, created=T0 + 20)], "has_more": False}

    harness = Harness(custom_source(tmp_path, spec), http_session, clock)
    upstream = Upstream(serve)
    with aioresponses() as mocked:
        mocked.get(Upstream.pattern(), callback=upstream, repeat=True)
        for cycle in range(4):
            state["cycle"] = cycle
            clock.advance(30)
            assert await harness.poller.run_cycle()
    assert any(p.get("id") == "call-7" for _, p, _ in upstream.calls)
    assert harness.finished(outcome="success") == 1  # call-8 only: call-9's row counted nothing
    assert harness.value("agent_sessions_active") == 1  # call-7 still waits


async def test_a_post_requester_sends_its_body_and_parameters(tmp_path, http_session, clock):
    spec = variant(
        requester={"method": "POST", "path": "/calls/search", "body": {"kind": "voice"}, "query": {"limit": "{page_size}"}}
    )
    calls = [call(1)]
    harness = Harness(custom_source(tmp_path, spec), http_session, clock)
    upstream = await poll_all(harness, lambda path, p: {"data": calls, "has_more": False})
    assert harness.finished() == 1
    assert upstream.bodies[0]["kind"] == "voice" and upstream.bodies[0]["limit"] == 2 and upstream.bodies[0]["page"] == 1


def test_the_readmes_worked_example_is_a_valid_spec_and_config(tmp_path):
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Adding a platform") : readme.index("## How counting works")]
    spec_text, config_text = [block.split("\n", 1)[1] for block in section.split("```yaml")[1:3]]
    spec_text, config_text = spec_text.split("```")[0], config_text.split("```")[0]
    assert load_spec_text(spec_text, "calls.yaml").name == "calls"
    (tmp_path / "calls.yaml").write_text(spec_text)
    (tmp_path / "config.yaml").write_text(config_text)
    source = load_config(tmp_path / "config.yaml", {"CALLS_KEY": "k"}).sources[0]
    assert source.provider == "calls" and source.options == {"assistant": "as-1"}


@pytest.mark.parametrize("name", sorted(builtin_specs()))
def test_each_builtin_spec_maps_its_golden_pages_to_the_golden_records(name, http_session, clock):
    """Pages in (the golden case's items), records out (``tests/golden/<name>.records.json``): a change
    of mapping is a diff to review. ``UPDATE_GOLDEN=1`` rewrites the file."""
    import os
    from dataclasses import asdict

    from agent_session_exporter.model import PollResult

    from .helpers import make_source

    golden = ROOT / "tests" / "golden"
    provider = Harness(make_source(name), http_session, clock).provider
    records = []
    for poll in sorted((golden / name).glob("poll*.json")):
        items = [{k: v for k, v in item.items() if not k.startswith("_")} for item in json.loads(poll.read_text())["items"]]
        result = PollResult()
        provider.parse_items(items, result)
        for record in result.records:
            fields = {k: (v.value if hasattr(v, "value") else v) for k, v in asdict(record).items() if k != "observed_at"}
            records.append({"poll": poll.stem, **fields})
        records += [{"poll": poll.stem, "invalid": list(invalid)} for invalid in result.invalid]
    text = json.dumps(records, indent=1, sort_keys=True) + "\n"
    path = golden / f"{name}.records.json"
    if os.environ.get("UPDATE_GOLDEN", "") not in ("", "0"):
        path.write_text(text)
    assert path.read_text() == text, f"mapping changed: UPDATE_GOLDEN=1, then review git diff {path}"


def test_a_user_sources_options_are_typed_as_the_spec_declares(tmp_path):
    spec = variant(
        options={
            **CALLS_SPEC["options"],
            "since": {"type": "duration", "minimum": 60},
            "ids": {"type": "string_list", "item": "id"},
        }
    )
    source = custom_source(tmp_path, spec, options={"since": "10m", "ids": ["a", " b "]})
    assert source.options == {"assistant": None, "since": 600.0, "ids": ("a", "b")}
    with pytest.raises(ConfigError, match="options.since: "):
        custom_source(tmp_path, spec, options={"since": "30s"})
    with pytest.raises(ConfigError, match="options.ids: must be a list of ids"):
        custom_source(tmp_path, spec, options={"ids": "a"})
