"""The landing page: a failing source stands out, its latest failures are listed, no secret shows."""

from __future__ import annotations

import yaml
from aioresponses import aioresponses

from agent_session_exporter.logs import redactor
from agent_session_exporter.serve.alerting import ERROR_RATIO, MIN_FINISHED, WINDOW_SECONDS
from agent_session_exporter.serve.landing import ERROR_SHOWN, render_landing

from .helpers import KEY, ROOT, Harness, Upstream, make_source
from .test_real_api_shapes import NOW, dify_row


async def test_the_latest_failures_are_listed_newest_first_without_secrets(http_session, clock):
    clock.now = NOW
    rows = [dify_row(n, "failed", f"upstream said: Authorization: Bearer tok-{n} and key {KEY}") for n in range(1, 26)]
    rows += [dify_row(30, "succeeded"), dify_row(31, "stopped", "Stopped by user.")]
    h = Harness(make_source("dify", session_url="https://dify.example/app/logs/{session_id}"), http_session, clock)
    quiet = Harness(make_source("dify", name="quiet"), http_session, clock)
    redactor.set_secrets([KEY])
    with aioresponses() as m:
        m.get(
            Upstream.pattern(),
            callback=Upstream(
                lambda path, params: {"data": rows if "page" not in params or params["page"] == "1" else [], "has_more": False}
            ),
            repeat=True,
        )
        assert await h.poller.run_cycle()
    page = render_landing({"dify-src": h.poller, "quiet": quiet.poller}, "/metrics", now=NOW)
    assert KEY not in page and "tok-" not in page and "[REDACTED]" in page
    assert "<tr class='failing'><td>dify-src</td>" in page and "25 of 27 ended in error in the last 15 minutes (93%)" in page
    assert "<tr class='ok'><td>quiet</td>" in page and "not polled yet" in page
    listed = [n for n in range(1, 26) if f"run-{n}<" in page]
    assert listed == list(range(6, 26))  # the 20 newest (by end time) of 25
    assert page.index("run-25<") < page.index("run-6<")  # newest first
    assert "run-31" not in page  # a cancelled run is no failure
    assert "href='/sessions/dify-src/run-25'" in page


async def test_an_error_text_is_redacted_before_it_is_cut(http_session, clock):
    """A key that straddles the cut is replaced whole: cutting first would leave a prefix the
    redactor no longer recognises."""
    clock.now = NOW
    long_key = "sk-live-" + "0123456789abcdefghijklmnopqrstuvwxyz"  # 44 characters
    error = "x" * (ERROR_SHOWN - 15) + f" key {long_key} rejected"  # the cut falls 10 characters in
    h = Harness(make_source("dify", api_key=long_key), http_session, clock)
    redactor.set_secrets([long_key])
    try:
        with aioresponses() as m:
            m.get(
                Upstream.pattern(),
                callback=Upstream(
                    lambda path, params: {
                        "data": [dify_row(1, "failed", error)] if params.get("page", "1") == "1" else [],
                        "has_more": False,
                    }
                ),
                repeat=True,
            )
            assert await h.poller.run_cycle()
        page = render_landing({"dify-src": h.poller}, "/metrics", now=NOW)
    finally:
        redactor.set_secrets([])
    assert "run-1<" in page and "x" * (ERROR_SHOWN - 15) + " key [REDACTED]" in page
    assert long_key[:4] not in page  # not even the start of the key


async def test_a_source_turns_red_exactly_when_the_error_alert_would(http_session, clock):
    """The ratio and the minimum count the alert needs (``serve/thresholds.json``): 2 failures of 2
    sessions are amber, not red; past both numbers, red."""
    clock.now = NOW
    few = [dify_row(1, "failed", "boom"), dify_row(2, "failed", "boom")]
    many = [dify_row(n, "failed", "boom") if n <= 5 else dify_row(n, "succeeded") for n in range(1, MIN_FINISHED + 1)]
    assert 5 / MIN_FINISHED > ERROR_RATIO
    pages = []
    for name, rows in (("few", few), ("many", many)):
        h = Harness(make_source("dify", name=name), http_session, clock)
        with aioresponses() as m:
            m.get(
                Upstream.pattern(),
                callback=Upstream(
                    lambda path, params, rows=rows: {"data": rows if params.get("page", "1") == "1" else [], "has_more": False}
                ),
                repeat=True,
            )
            assert await h.poller.run_cycle()
        pages.append(render_landing({name: h.poller}, "/metrics", now=NOW))
    assert "<tr class='ok'><td>few</td>" in pages[0] and "badge warn'>2 of 2 ended in error" in pages[0]
    assert "<tr class='failing'><td>many</td>" in pages[1] and f"badge bad'>5 of {MIN_FINISHED} ended" in pages[1]


def test_the_shipped_alert_uses_the_same_numbers():
    rules = yaml.safe_load((ROOT / "deploy" / "prometheus" / "rules.yml").read_text())
    (alert,) = [r for g in rules["groups"] for r in g["rules"] if r.get("alert") == "AgentSessionsHighErrorRatio"]
    assert f"> {ERROR_RATIO:g}" in alert["expr"] and f">= {MIN_FINISHED}" in alert["expr"]
    assert "rate15m" in alert["expr"] and WINDOW_SECONDS == 15 * 60


async def test_a_source_on_a_deprecated_api_says_so_and_what_to_set(http_session, clock, logs):
    """HoneyHive's export and GET /session are deprecated: said once in the log at start, with the API in
    use, and on the landing page; the search (the default) says nothing of the kind."""
    events = Harness(make_source("honeyhive", name="hh-events", api="events"), http_session, clock)
    search = Harness(make_source("honeyhive", name="hh-search"), http_session, clock)
    page = render_landing({"hh-events": events.poller, "hh-search": search.poller}, "/metrics", now=NOW)
    assert "Deprecated settings" in page and "<li>hh-events: api: events reads POST /v1/events/export" in page
    assert "set api: search" in page and "hh-search:" not in page
    warned = [(line["source"], line["msg"]) for line in logs("warning")]
    assert warned == [("hh-events", events.source.deprecated)]
    assert {(line["source"], line["msg"]) for line in logs("info")} >= {
        ("hh-events", "HoneyHive sessions read with POST /v1/events/export (api: events)"),
        ("hh-search", "HoneyHive sessions read with POST /v1/events/search (api: search)"),
    }
