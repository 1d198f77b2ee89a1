"""Session links: the template, and the exporter's redirect to the provider's page of a session."""

from __future__ import annotations

import aiohttp
import pytest
from aiohttp import web

from agent_session_exporter.app import Exporter
from agent_session_exporter.config import parse_config
from agent_session_exporter.count.state import PendingSession
from agent_session_exporter.read.source import template_fields
from agent_session_exporter.serve.links import MissingValue, SessionLink, link_of
from agent_session_exporter.serve.server import make_app


def test_values_are_encoded_as_one_path_segment_each():
    link = SessionLink("https://app.example/w/{workflow}/e/{session_id}?src={source}", "src one")
    assert link.url("../x?y#z", "wf/1") == "https://app.example/w/wf%2F1/e/..%2Fx%3Fy%23z?src=src%20one"
    with pytest.raises(MissingValue):
        link.url("abc", None)


@pytest.mark.parametrize("template, error", [
    ("https://x.example/{run}", "unknown placeholder {run}"),
    ("https://x.example/{session_id!r}", "unknown placeholder"),
    ("https://x.example/runs", "must contain {session_id}"),
])
def test_a_template_names_only_known_placeholders(template, error):
    with pytest.raises(ValueError, match=error):
        template_fields(template)


@pytest.mark.parametrize("base_url, expected", [
    ("https://api.kapso.ai/platform/v1", "https://app.kapso.ai/workflows/wf/executions/e1"),
    ("https://kapso.internal.example/platform/v1", None),  # not the vendor's cloud: no default
])
def test_kapso_links_to_its_app_by_default_on_its_cloud_only(base_url, expected):
    source = parse_config({"sources": [{"name": "k", "provider": "kapso", "api_key": "k", "base_url": base_url,
                                        "workflow_ids": ["wf"]}]}, {}).sources[0]
    link = link_of(source)
    assert (link.url("e1", "wf") if link else None) == expected


@pytest.fixture
async def served():
    config = parse_config({"sources": [
        {"name": "linked", "provider": "kapso", "api_key": "k", "base_url": "http://127.0.0.1:1",
         "workflow_ids": ["wf"], "session_url": "https://app.example/workflows/{workflow}/executions/{session_id}"},
        {"name": "plain", "provider": "dify", "api_key": "k", "base_url": "http://127.0.0.1:1"}]}, {})
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
        async with client.get(url + path, allow_redirects=False) as response:
            return response.status, response.headers.get("Location") or await response.text()

    assert await get("/sessions/linked/run-7") == (302, "https://app.example/workflows/wf-9/executions/run-7")
    assert await get("/sessions/linked/run-8?workflow=wf-2") == (
        302, "https://app.example/workflows/wf-2/executions/run-8")
    status, text = await get("/sessions/linked/run-8")
    assert status == 404 and "add ?workflow=" in text
    status, text = await get("/sessions/plain/run-1")
    assert status == 404 and "no session_url" in text
    status, text = await get("/sessions/nowhere/run-1")
    assert status == 404 and "no source named 'nowhere'" in text
