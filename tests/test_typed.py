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
from agent_session_exporter.read.http_client import _decode_json
from agent_session_exporter.read.providers import PROVIDER_CLASSES
from agent_session_exporter.read.providers.dify_pages import PAGE
from agent_session_exporter.read.providers.honeyhive_pages import EVENTS
from agent_session_exporter.read.providers.whatabot import PAGE as WHATABOT_PAGE
from agent_session_exporter.read.spec.typed import page_decoder_of

from .helpers import Harness, Upstream, make_source, spring_page, whatabot_item
from .test_hostile_strings import CORPUS
from .test_real_api_shapes import NOW, dify_row

ODD_VALUES: list[Any] = [
    None,
    "",
    0,
    -1,
    1.5,
    7,
    10**20,
    1e300,
    "12",
    "2026-11-25T10:00:00Z",
    NOW * 1000,
    NOW * 1e6,
    True,
    "x" * 300,
    {"a": 1},
    [1],
]


def random_row(rng: random.Random, n: int) -> dict[str, Any]:
    row = dify_row(
        n,
        rng.choice(["succeeded", "failed", "stopped", "running", "partial-succeeded", "odd"]),
        rng.choice([None, "", "boom", "Stopped by user."]),
    )
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
        m.get(Upstream.pattern(), callback=Upstream(lambda path, params: {"data": rows, "has_more": False}), repeat=True)
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
        sessions = [
            {**honeyhive_session(n, int(NOW - 100 + n) * 1000, int(NOW - 90 + n) * 1000), "session_id": sid}
            for n, sid in enumerate(ids)
        ]
        return {"settle_after": 0}, lambda path, params: {"events": sessions, "count": len(sessions)}
    executions = [{**kapso_execution(n, NOW - 100 + n, NOW - 90 + n, status="ended"), "id": sid} for n, sid in enumerate(ids)]
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


# -- every provider: typed and plain alike, and the known skip tells each item as its record would ---------


PROVIDERS = ["whatabot", "dify", "syntropic137", "honeyhive", "kapso"]
#: Each provider's list page: the key of its items, and its typed page decoder and items where it has one.
PAGES: dict[str, tuple[str, Any]] = {
    "whatabot": ("content", (WHATABOT_PAGE, lambda page: page.content)),
    "dify": ("data", (PAGE, lambda page: page.data)),
    "syntropic137": ("sessions", (page_decoder_of(PROVIDER_CLASSES["syntropic137"].SPEC), lambda page: page.get("sessions"))),
    "honeyhive": ("events", (EVENTS, lambda page: page.events)),
    "kapso": ("data", (page_decoder_of(PROVIDER_CLASSES["kapso"].SPEC), lambda page: page.get("data"))),
}
HOSTILE_VALUES: list[Any] = (
    ODD_VALUES
    + CORPUS[:8]
    + [2**64 + 1, -(2**63) - 1, 10**30, "2026-11-25 10:00:00", "Fri, 01 May 2026 12:01:01 -0000", " 2026-11-25T10:00:00Z "]
)


def base_item(provider: str, n: int) -> dict[str, Any]:
    from .test_providers import dify_log, honeyhive_session, kapso_execution, syntropic_item

    start = NOW - 500 + n
    if provider == "whatabot":
        return whatabot_item(n, status=("completed", "error", "running", "odd")[n % 4], started=start)
    if provider == "dify":
        return dify_log(n, ("succeeded", "failed", "running", "stopped")[n % 4], created=int(start))
    if provider == "syntropic137":
        return syntropic_item(n, start, status=("completed", "failed", "running")[n % 3])
    if provider == "honeyhive":
        item = honeyhive_session(
            n, int(start * 1000), None if n % 5 == 0 else int(start * 1000) + 4000, error="boom" if n % 3 == 0 else None
        )
        if n % 7 == 0:
            item.update(event_type="model", parent_id=item["session_id"])  # a child event
        return item
    return kapso_execution(n, start, None if n % 4 == 0 else start + 10, status=("ended", "failed", "running")[n % 3])


def odd_item(rng: random.Random, provider: str, n: int) -> dict[str, Any]:
    """A provider's item with a few fields (nested ones too) given hostile values, or left out."""
    item = base_item(provider, n)
    for _ in range(rng.randrange(4)):
        target = item
        nested = [value for value in item.values() if isinstance(value, dict)]
        if nested and rng.random() < 0.3:
            target = rng.choice(nested)
        if not target:
            continue
        key = rng.choice(list(target))
        if rng.random() < 0.15:
            del target[key]
        else:
            target[key] = rng.choice(HOSTILE_VALUES)
    return item


def read_page(
    h: Harness, provider: str, body: bytes, known: PollWindow | None = None, rows: list[tuple[str, float]] | None = None
) -> tuple[PollResult, list[Any]]:
    """A page read as the provider reads it: decoded typed where it has a decoder and the page fits (as the
    HTTP client falls back), its items parsed; and the items."""
    key, typed = PAGES[provider]
    items = None
    if typed is not None:
        try:
            items = typed[1](typed[0].decode(body))
        except (msgspec.ValidationError, msgspec.DecodeError):
            pass
    if items is None:
        items = _decode_json(body)[key]
    result = PollResult()
    h.provider.parse_items(items, result, window=known, rows=rows)
    return result, items


@pytest.mark.parametrize("provider", PROVIDERS)
def test_every_provider_reads_odd_items_alike_typed_or_plain_and_tells_known_ones_by_their_records_keys(
    http_session, clock, provider
):
    rng = random.Random(provider)
    extra = {"settle_after": 0} if provider == "honeyhive" else {}
    h = Harness(make_source(provider, page_size=1000 if provider == "honeyhive" else 100, **extra), http_session, clock)
    key, typed = PAGES[provider]
    skipped = typed_pages = 0
    for page in range(120):
        items = [odd_item(rng, provider, page * 6 + i) for i in range(6)]
        if rng.random() < 0.2:
            items[rng.randrange(6)]["id" if provider != "honeyhive" else "session_id"] = items[0].get("id", "dup")
        body = json.dumps({key: items}).encode()
        plain = PollResult()
        h.provider.parse_items(_decode_json(body)[key], plain)
        read, decoded = read_page(h, provider, body)
        typed_pages += typed is not None and not isinstance(decoded[0] if decoded else {}, dict)
        assert read.records == plain.records and read.invalid == plain.invalid, items
        # Each item's key, where key_of tells one, is its record's (plain and typed items alike).
        for item in [*_decode_json(body)[key], *decoded]:
            one = PollResult()
            h.provider.parse_items([item], one)
            told = h.provider.key_of(item)
            if one.records:
                assert told is None or told == (one.records[0].session_id, one.records[0].key_time), item
            elif told is not None:  # no record: an invalid item whose id and key still read, never a counted one
                assert one.invalid or one.skipped, item
        # With every record's id counted, a list read makes no record of them and notes each in rows.
        window = PollWindow(since=0, known_finished={r.session_id for r in plain.records})
        rows: list[tuple[str, float]] = []
        again, _ = read_page(h, provider, body, window, rows)
        assert all(record in plain.records for record in again.records)  # only those key_of cannot tell
        assert again.known_seen + len(again.records) >= len(plain.records)
        assert set(rows) >= {(r.session_id, r.key_time) for r in plain.records}
        skipped += again.known_seen
    assert skipped > 200
    assert typed is None or 10 < typed_pages < 120  # both ways were exercised
