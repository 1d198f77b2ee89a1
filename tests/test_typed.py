"""Typed decoding gives exactly the records of the item-by-item path, and a page with a bad item
falls back so the good items still count and the bad one is counted once."""

from __future__ import annotations

import json
import random
from typing import Any

import msgspec
import pytest
from aioresponses import aioresponses

from agent_session_exporter.model import PollResult, PollWindow
from agent_session_exporter.read.providers.dify import PAGE

from .helpers import Harness, Upstream, make_source, spring_page, whatabot_item
from .test_real_api_shapes import NOW, dify_row

ODD_VALUES: list[Any] = [None, "", 0, -1, 1.5, 7, 10**20, 1e300, "12", "2026-11-25T10:00:00Z", NOW * 1000,
                         NOW * 1e6, True, "x" * 300, {"a": 1}, [1]]


def random_row(rng: random.Random, n: int) -> dict[str, Any]:
    row = dify_row(n, rng.choice(["succeeded", "failed", "stopped", "running", "partial-succeeded", "odd"]),
                   rng.choice([None, "", "boom", "Stopped by user."]))
    run = row["workflow_run"]
    for _ in range(rng.randrange(3)):  # a few fields get an odd value
        target = rng.choice([row, run])
        target[rng.choice(list(target))] = rng.choice(ODD_VALUES)
    if rng.random() < 0.05:
        row["workflow_run"] = None
    return row


def both_paths(h: Harness, rows: list[dict[str, Any]]) -> tuple[PollResult, PollResult]:
    """The same rows read item by item, and typed (where the page fits the structs)."""
    plain, typed = PollResult(), PollResult()
    body = json.dumps({"data": rows, "has_more": False}).encode()
    h.provider.parse_items(json.loads(body)["data"], plain)
    try:
        page = PAGE.decode(body)
    except (msgspec.ValidationError, msgspec.DecodeError):
        h.provider.parse_items(json.loads(body)["data"], typed)  # as the client falls back
    else:
        h.provider.parse_items(page.data, typed)
    return plain, typed


def test_typed_records_equal_item_by_item_records_for_a_thousand_odd_rows(http_session, clock):
    rng = random.Random(11)
    h = Harness(make_source("dify"), http_session, clock)
    typed_pages = 0
    for page in range(200):
        rows = [random_row(rng, page * 5 + i) for i in range(5)]
        plain, typed = both_paths(h, rows)
        assert typed.records == plain.records and typed.invalid == plain.invalid, rows
        try:
            PAGE.decode(json.dumps({"data": rows}).encode())
            typed_pages += 1
        except msgspec.ValidationError:
            pass
    assert 20 < typed_pages < 180  # both ways were exercised


async def test_a_page_with_a_bad_item_still_counts_the_good_ones_once(http_session, clock):
    clock.now = NOW
    rows = [dify_row(n, "succeeded") for n in range(1, 6)]
    rows[2]["workflow_run"]["status"] = 42  # does not fit the structs: the page is read item by item
    rows[3]["workflow_run"]["elapsed_time"] = 1e300  # fits, but out of bounds: that item item by item
    h = Harness(make_source("dify"), http_session, clock)
    with aioresponses() as m:
        m.get(Upstream.pattern(), callback=Upstream(lambda path, params: {"data": rows, "has_more": False}),
              repeat=True)
        for _ in range(2):
            assert await h.poller.run_cycle()
            clock.advance(30)
    assert h.finished() == 4
    assert h.value("agent_session_exporter_invalid_records_total", reason="wrong_type") == 1
    assert h.value("agent_session_exporter_invalid_records_total", reason="bad_figure") == 1
    typed = PAGE.decode(json.dumps({"data": [r for r in rows if r is not rows[2]]}).encode())
    assert len(typed.data) == 4  # the rest of the page does fit


#: Past 64 bits: orjson reads such an integer as a float, msgspec (the typed path) exactly.
BIG_IDS = [2**64 + 1, -(2**63) - 1, 10**30 + 7]


def provider_page(provider: str, ids: list[Any]) -> tuple[dict[str, Any], Any]:
    """A source of ``provider`` and an upstream whose list holds one finished session per id."""
    from .test_providers import dify_log, honeyhive_session, kapso_execution, syntropic_item
    if provider == "whatabot":
        items = [{**whatabot_item(n, started=NOW - 100 + n), "id": sid} for n, sid in enumerate(ids)]
        return {}, lambda path, params: spring_page(items, 0, 100, len(items))
    if provider == "dify":
        rows = [dify_log(n, created=int(NOW) - 100 + n, id=sid) for n, sid in enumerate(ids)]
        return {}, lambda path, params: {"data": rows, "has_more": False}
    if provider == "syntropic137":
        items = [{**syntropic_item(n, NOW - 100 + n), "id": sid} for n, sid in enumerate(ids)]
        return {}, lambda path, params: {"sessions": items if path == "/sessions" else [], "total": len(items)}
    if provider == "honeyhive":
        sessions = [{**honeyhive_session(n, int(NOW - 100 + n) * 1000, int(NOW - 90 + n) * 1000), "session_id": sid}
                    for n, sid in enumerate(ids)]
        return {"settle_after": 0}, lambda path, params: {"events": sessions, "count": len(sessions)}
    executions = [{**kapso_execution(n, NOW - 100 + n, NOW - 90 + n, status="ended"), "id": sid}
                  for n, sid in enumerate(ids)]
    return {}, lambda path, params: {"data": executions, "paging": {"cursors": {}}}


@pytest.mark.parametrize("provider", ["whatabot", "dify", "syntropic137", "honeyhive", "kapso"])
async def test_ids_past_64_bits_count_by_their_digits_with_every_provider(http_session, clock, provider):
    clock.now = NOW
    overrides, serve = provider_page(provider, BIG_IDS)
    h = Harness(make_source(provider, **overrides), http_session, clock)
    with aioresponses() as m:
        m.get(Upstream.pattern(), callback=Upstream(serve), repeat=True)
        m.post(Upstream.pattern(), callback=Upstream(serve), repeat=True)  # HoneyHive's search
        result = await h.provider.poll(PollWindow(since=NOW - 3600, now=NOW))
    assert sorted(r.session_id for r in result.records) == sorted(str(sid) for sid in BIG_IDS)
    assert result.invalid == []


async def test_an_id_past_64_bits_counts_alike_whether_its_page_is_read_typed_or_item_by_item(http_session, clock):
    """Whether an item counts never depends on the rest of its page."""
    clock.now = NOW
    counted = []
    for odd_neighbour in (False, True):
        rows = [dify_row(1, "succeeded"), dify_row(2, "succeeded")]
        rows[0]["workflow_run"]["id"] = 2**64 + 1
        if odd_neighbour:
            rows[1]["workflow_run"]["status"] = 42  # does not fit the structs: the page is read item by item
        h = Harness(make_source("dify"), http_session, clock)
        with aioresponses() as m:
            page = {"data": rows, "has_more": False}
            m.get(Upstream.pattern(), callback=Upstream(lambda path, params, page=page: page), repeat=True)
            result = await h.provider.poll(PollWindow(since=NOW - 3600, now=NOW))
        counted.append([r.session_id for r in result.records])
    assert counted == [[str(2**64 + 1), "run-2"], [str(2**64 + 1)]]
