"""Typed decoding gives exactly the records of the item-by-item path, and a page with a bad item
falls back so the good items still count and the bad one is counted once."""

from __future__ import annotations

import json
import random
from typing import Any

import msgspec
from aioresponses import aioresponses

from agent_session_exporter.model import PollResult
from agent_session_exporter.read.providers.dify import PAGE

from .helpers import Harness, Upstream, make_source
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
