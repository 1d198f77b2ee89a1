"""Session links: the template, and the exporter's redirect to the provider's page of a session."""

from __future__ import annotations

import aiohttp
import pytest
from aiohttp import web
from yarl import URL

from agent_session_exporter.app import Exporter
from agent_session_exporter.config import ConfigError, parse_config
from agent_session_exporter.count.state import PendingSession
from agent_session_exporter.read.source import template_fields
from agent_session_exporter.serve.links import MissingValue, SessionLink, link_of
from agent_session_exporter.serve.server import make_app


def test_values_are_encoded_as_one_path_segment_each():
    link = SessionLink("https://app.example/w/{workflow}/e/{session_id}?src={source}", "src one")
    assert link.url("../x?y#z", "wf/1") == "https://app.example/w/wf%2F1/e/..%2Fx%3Fy%23z?src=src%20one"
    with pytest.raises(MissingValue):
        link.url("abc", None)


@pytest.mark.parametrize("value", [".", "..", "..."])
def test_a_value_of_dots_is_no_path_segment(value):
    """``.`` and ``..`` would be resolved away (yarl in the redirect, browsers by the WHATWG URL rules,
    which read ``%2E`` as a dot too): the dots are percent-encoded, and so is that percent sign."""
    link = SessionLink("https://app.example/w/{workflow}/e/{session_id}", "s")
    assert link.url(value, value) == "https://app.example/w/{0}/e/{0}".format("%252E" * len(value))
    assert link.url("a.b", ".x") == "https://app.example/w/.x/e/a.b"  # dots among other characters stay


@pytest.mark.parametrize(
    "template",
    [
        "https://app.example{session_id}",  # .../sessions/x/.com.evil.test would lead to app.example.com.evil.test
        "https://app.example.{session_id}/x",
        "https://app.example:{session_id}/x",  # a port placeholder: a 500 at request time
        "https://app.example:{{1}}/{session_id}",
        "https://app.example:99999/{session_id}",
        "https://{session_id}.example/x",
        "https://user@app.example/{session_id}",
        "https://[zz]/{session_id}",
        "https://" + "ü" * 70 + ".example/{session_id}",  # no IDNA form: a 500 at request time
    ],
)
def test_a_template_whose_host_is_not_fixed_is_refused_at_config_time(template):
    raw = {
        "sources": [{"name": "k", "provider": "dify", "api_key": "k", "base_url": "https://x.example", "session_url": template}]
    }
    with pytest.raises(
        ConfigError,
        match=r"^source 'k': session_url: must start with http:// or https:// and a "
        r"fixed host",
    ):
        parse_config(raw, {})


@pytest.mark.parametrize(
    "template",
    [
        "https://app.example/{session_id}",
        "http://app.example:8080?id={session_id}",
        "https://app.example#{session_id}",
        "https://[::1]:3000/runs/{session_id}",
        "https://xn--bcher-kva.example/{session_id}",
    ],
)
def test_a_template_with_a_fixed_host_is_taken(template):
    raw = {
        "sources": [{"name": "k", "provider": "dify", "api_key": "k", "base_url": "https://x.example", "session_url": template}]
    }
    assert parse_config(raw, {}).sources[0].session_url == template


@pytest.mark.parametrize(
    "template, error",
    [
        ("https://x.example/{run}", "unknown placeholder {run}"),
        ("https://x.example/{session_id!r}", "unknown placeholder"),
        ("https://x.example/runs", "must contain {session_id}"),
    ],
)
def test_a_template_names_only_known_placeholders(template, error):
    with pytest.raises(ValueError, match=error):
        template_fields(template)


@pytest.mark.parametrize(
    "base_url, expected",
    [
        ("https://api.kapso.ai/platform/v1", "https://app.kapso.ai/workflows/wf/executions/e1"),
        ("https://kapso.internal.example/platform/v1", None),  # not the vendor's cloud: no default
    ],
)
def test_kapso_links_to_its_app_by_default_on_its_cloud_only(base_url, expected):
    source = parse_config(
        {"sources": [{"name": "k", "provider": "kapso", "api_key": "k", "base_url": base_url, "workflow_ids": ["wf"]}]}, {}
    ).sources[0]
    link = link_of(source)
    assert (link.url("e1", "wf") if link else None) == expected


@pytest.mark.parametrize(
    "extra, expected",
    [
        ({"project": "my project"}, "https://app.honeyhive.ai/projects/my%20project/sessions/s1"),
        ({}, None),  # api: search needs no project, and without one its app's page cannot be named
        ({"session_url": "https://hh.example/s/{session_id}"}, "https://hh.example/s/s1"),
    ],
)
def test_honeyhive_links_to_its_app_only_with_a_project(extra, expected):
    source = parse_config(
        {
            "sources": [
                {"name": "h", "provider": "honeyhive", "api_key": "k", "base_url": "https://api.dp1.us.honeyhive.ai", **extra}
            ]
        },
        {},
    ).sources[0]
    link = link_of(source)
    assert (link.url("s1", None) if link else None) == expected


@pytest.fixture
async def served():
    config = parse_config(
        {
            "sources": [
                {
                    "name": "linked",
                    "provider": "kapso",
                    "api_key": "k",
                    "base_url": "http://127.0.0.1:1",
                    "workflow_ids": ["wf"],
                    "session_url": "https://app.example/workflows/{workflow}/executions/{session_id}",
                },
                {"name": "plain", "provider": "dify", "api_key": "k", "base_url": "http://127.0.0.1:1"},
            ]
        },
        {},
    )
    exporter = Exporter(config)
    await exporter.open()
    runner = web.AppRunner(make_app(exporter), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        async with aiohttp.ClientSession() as client:
            yield exporter, client, "http://{}:{}".format(*runner.addresses[0][:2])
    finally:
        await runner.cleanup()
        await exporter.close()


async def test_the_redirect_finds_the_workflow_or_says_what_is_missing(served):
    exporter, client, url = served
    exporter.pollers["linked"].state.pending["run-7"] = PendingSession(1.0, "running", 1.0, workflow="wf-9")

    async def get(path: str) -> tuple[int, str]:
        async with client.get(URL(url + path, encoded=True), allow_redirects=False) as response:
            return response.status, response.headers.get("Location") or await response.text()

    assert await get("/sessions/linked/run-7") == (302, "https://app.example/workflows/wf-9/executions/run-7")
    assert await get("/sessions/linked/run-8?workflow=wf-2") == (302, "https://app.example/workflows/wf-2/executions/run-8")
    # A value that is a dot segment stays one segment: the redirect keeps to the template's path.
    assert await get("/sessions/linked/run-8?workflow=..") == (302, "https://app.example/workflows/%252E%252E/executions/run-8")
    assert await get("/sessions/linked/%2E%2E?workflow=.") == (302, "https://app.example/workflows/%252E/executions/%252E%252E")
    status, text = await get("/sessions/linked/run-8")
    assert status == 404 and "add ?workflow=" in text
    status, text = await get("/sessions/plain/run-1")
    assert status == 404 and "no session_url" in text
    status, text = await get("/sessions/nowhere/run-1")
    assert status == 404 and "no source named 'nowhere'" in text
