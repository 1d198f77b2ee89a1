"""The spec language's ``pushes``: a platform declared to push (Kapso's built-in spec: webhooks;
Syntropic137's: an event stream) gives its sources the webhook options (read/push.py: PushSource) or
``push: sse`` (StreamSource), refused with a clear line for any other provider; a spec provider answers what a push needs of it:
whether it can look a session up, and whether it polls the workflow a push names (the partition
router's parents: named, or listed)."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from aioresponses import aioresponses

from agent_session_exporter.config import ConfigError, parse_config
from agent_session_exporter.read.push import PushSource, StreamSource
from agent_session_exporter.read.spec.load import SpecError, builtin_specs, load_spec_text
from agent_session_exporter.read.spec.requests import StreamPushes

from .helpers import BASE, Harness, make_source
from .test_spec import CALLS_SPEC, custom_source

SECRET = "whsec-0123456789abcdef"


def test_kapsos_spec_declares_webhooks_and_its_sources_take_the_push_options():
    assert builtin_specs()["kapso"].pushes is not None
    source = make_source("kapso", webhook_secret=SECRET, max_push_lookups_per_minute=6)
    assert isinstance(source, PushSource) and source.webhook_secret == SECRET
    assert not isinstance(make_source("syntropic137"), PushSource)
    with pytest.raises(ConfigError, match="webhook_secret"):
        parse_config({"sources": [{"name": "st", "provider": "syntropic137", "base_url": BASE, "webhook_secret": SECRET}]}, {})


def test_pushes_need_a_lookup_and_a_known_kind():
    spec = copy.deepcopy(CALLS_SPEC)
    spec["pushes"] = {"kind": "webhook", "format": "kapso"}
    assert load_spec_text(_yaml(spec), "calls.yaml").pushes is not None
    del spec["lookup"]
    with pytest.raises(SpecError, match="lookup: pushes are hints"):
        load_spec_text(_yaml(spec), "calls.yaml")
    spec = copy.deepcopy(CALLS_SPEC)
    spec["pushes"] = {"kind": "websocket", "format": "kapso"}
    with pytest.raises(SpecError, match="pushes: Input tag .websocket. .* expected tags: .webhook., .sse."):
        load_spec_text(_yaml(spec), "calls.yaml")
    spec["pushes"] = {"kind": "sse", "format": "kapso"}  # a stream needs its path, and a frame reader
    with pytest.raises(SpecError, match="pushes.path: required") as caught:
        load_spec_text(_yaml(spec), "calls.yaml")
    assert "pushes.format" in str(caught.value)
    spec["pushes"] = {"kind": "sse", "format": "syntropic137", "path": "https://elsewhere/sse"}
    with pytest.raises(SpecError, match="pushes.path: must start with /"):
        load_spec_text(_yaml(spec), "calls.yaml")


def test_syntropic137s_spec_declares_its_activity_stream_and_its_sources_take_push_sse():
    pushes = builtin_specs()["syntropic137"].pushes
    assert isinstance(pushes, StreamPushes) and pushes.path == "/sse/activity" and pushes.format == "syntropic137"
    source = make_source("syntropic137", push="sse", max_push_lookups_per_minute=30)
    assert isinstance(source, StreamSource) and source.push == "sse" and source.max_push_lookups_per_minute == 30
    assert make_source("syntropic137").push is None  # off by default
    assert not isinstance(source, PushSource)  # no webhook options


@pytest.mark.parametrize("provider", ["whatabot", "kapso", "honeyhive"])
def test_push_sse_is_refused_for_a_provider_that_streams_nothing(provider):
    entry = {"name": "src", "provider": provider, "base_url": BASE, "api_key": "k" * 20, "push": "sse"}
    with pytest.raises(ConfigError) as caught:
        parse_config({"sources": [entry]}, {})
    assert str(caught.value) == ("source 'src': push: this provider streams no activity: push: sse is for syntropic137 only")
    with pytest.raises(ConfigError, match="source 'st': push: Input should be 'sse'"):
        parse_config({"sources": [{"name": "st", "provider": "syntropic137", "base_url": BASE, "push": "webhook"}]}, {})


def test_a_user_spec_may_not_declare_pushes_yet(tmp_path: Path):
    spec = copy.deepcopy(CALLS_SPEC)
    spec["pushes"] = {"kind": "webhook", "format": "kapso"}
    with pytest.raises(ConfigError, match="pushes are taken by built-in specs only"):
        custom_source(tmp_path, spec)


async def test_a_spec_provider_looks_up_only_where_its_spec_has_a_lookup(tmp_path, http_session, clock):
    assert Harness(make_source("kapso"), http_session, clock).provider.can_look_up
    spec = copy.deepcopy(CALLS_SPEC)
    del spec["lookup"]
    assert not Harness(custom_source(tmp_path, spec), http_session, clock).provider.can_look_up


async def test_the_workflows_polled_are_those_named_else_those_listed(http_session, clock):
    named = Harness(make_source("kapso", workflow_ids=["wf-a", "wf-b"]), http_session, clock).provider
    assert named.polls_workflow("wf-b") and not named.polls_workflow("wf-c")
    discovered = Harness(make_source("kapso", workflow_ids=None), http_session, clock).provider
    assert discovered.polls_workflow("wf-c")  # before the first listing: every one
    assert discovered.router is not None
    with aioresponses() as m:
        m.get(f"{BASE}/workflows?limit=100", payload={"data": [{"id": "wf-a"}, {"id": "wf-b"}]})
        assert await discovered.router.current(clock()) == ("wf-a", "wf-b")
    assert discovered.polls_workflow("wf-a") and not discovered.polls_workflow("wf-c")


def _yaml(spec: dict[str, object]) -> str:
    return yaml.safe_dump(spec)
