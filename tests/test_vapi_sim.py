"""The Vapi simulator (tests/sims/vapi.py) itself: the List Calls and Get Call API as its docs describe
them (auth, filters, limit, order, errors), calls living and ending over time, and a ground truth
that agrees with what the API lists."""

from __future__ import annotations

import random
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

import aiohttp
import pytest

from .helpers import FakeClock
from .sims.vapi import DEFAULT_KEY, EPOCH, VapiSim
from .sims.vapi_calls import COMMON, OUTCOME_WEIGHTS, Usage, iso, make_call, plan_steps
from .sims.vapi_reasons import CALL_TYPES, OUTCOMES, ended_reasons, fits, outcome_of, phase_of

AUTH = {"Authorization": f"Bearer {DEFAULT_KEY}"}


async def get(session: aiohttp.ClientSession, url: str, headers: dict[str, str] | None = None, **params: Any) -> tuple[int, Any]:
    async with session.get(
        url, params={k: str(v) for k, v in params.items()}, headers=AUTH if headers is None else headers
    ) as response:
        return response.status, await response.json()


def seconds(stamp: str) -> float:
    return datetime.fromisoformat(stamp).timestamp()


def millis(stamp: str) -> int:
    """An ISO 8601 stamp as exact epoch milliseconds."""
    return (datetime.fromisoformat(stamp) - EPOCH) // timedelta(milliseconds=1)


async def read_all(session: aiohttp.ClientSession, base: str) -> dict[str, dict[str, Any]]:
    """Every call, paged newest first with ``createdAtLe`` from the oldest ``createdAt`` seen
    (inclusive, so ties at a page's edge come again and are kept once)."""
    calls: dict[str, dict[str, Any]] = {}
    cursor: dict[str, str] = {}
    for _ in range(100):
        status, page = await get(session, base + "/call", limit=1000, **cursor)
        assert status == 200
        calls.update((item["id"], item) for item in page)
        if len(page) < 1000:
            return calls
        assert page[-1]["createdAt"] != cursor.get("createdAtLe"), "a page of one instant: paging cannot go on"
        cursor = {"createdAtLe": page[-1]["createdAt"]}
    raise AssertionError("paging did not end")


def truth_from_items(items: list[dict[str, Any]]) -> dict[str, Any]:
    """What an exporter reading these Call objects counts, by outcome."""
    counts: Counter[str] = Counter()
    durations: Counter[str] = Counter()  # milliseconds
    tokens: dict[str, Counter[str]] = {o: Counter() for o in OUTCOMES}
    cost: Counter[str] = Counter()
    for item in items:
        if item["status"] != "ended":
            continue
        outcome = outcome_of(item["endedReason"])
        counts[outcome] += 1
        if "startedAt" in item:
            durations[outcome] += millis(item["endedAt"]) - millis(item["startedAt"])
        breakdown = item["costBreakdown"]
        tokens[outcome].update(
            {k: breakdown[k] for k in ("llmPromptTokens", "llmCompletionTokens", "llmCachedPromptTokens", "ttsCharacters")}
        )
        cost[outcome] += item["cost"]
    return {"counts": counts, "durations": durations, "tokens": tokens, "cost": cost}


@pytest.fixture
async def session():
    async with aiohttp.ClientSession() as client:
        yield client


# -- endedReason: outcome, phase, fit ------------------------------------------------------------------


def test_every_documented_reason_has_one_of_the_four_outcomes() -> None:
    reasons = ended_reasons()
    assert len(reasons) == len(set(reasons)) == 595
    by_outcome = Counter(outcome_of(r) for r in reasons)
    assert set(by_outcome) == set(OUTCOMES)
    assert by_outcome["error"] > 500  # the enum is mostly provider and platform failures


@pytest.mark.parametrize(
    ("reason", "outcome"),
    [
        ("customer-ended-call", "success"),
        ("assistant-ended-call", "success"),
        ("assistant-forwarded-call", "success"),
        ("call.in-progress.twilio-completed-call", "success"),
        ("silence-timed-out", "timeout"),
        ("exceeded-max-duration", "timeout"),
        ("assistant-join-timed-out", "timeout"),
        ("customer-did-not-answer", "cancelled"),
        ("customer-busy", "cancelled"),
        ("voicemail", "cancelled"),
        ("manually-canceled", "cancelled"),
        ("call.in-progress.error-providerfault-outbound-sip-480-temporarily-unavailable", "cancelled"),
        ("assistant-error", "error"),
        ("pipeline-error-openai-llm-failed", "error"),
        ("worker-shutdown", "error"),
        ("call.start.error-subscription-insufficient-credits", "error"),
        ("assistant-not-found", "error"),
        ("call.in-progress.error-vapifault-playht-request-timed-out", "error"),  # a provider's failure, not our limit
        ("phone-call-provider-closed-websocket", "error"),
        ("call.in-progress.error-transfer-failed", "error"),
        ("something-new", "unknown"),
    ],
)
def test_outcome_of(reason: str, outcome: str) -> None:
    assert outcome_of(reason) == outcome


def test_common_reasons_are_documented_and_listed_under_their_outcome() -> None:
    for outcome, reasons in COMMON.items():
        for reason in reasons:
            assert reason in ended_reasons(), reason
            assert outcome_of(reason) == outcome, reason


def test_every_type_can_end_every_way_and_its_life_fits_its_reason() -> None:
    rng = random.Random(5)
    for call_type in CALL_TYPES:
        for outcome in OUTCOMES:
            assert any(fits(r, call_type) for r in ended_reasons() if outcome_of(r) == outcome), (call_type, outcome)
    assert not fits("customer-busy", "webCall") and not fits("customer-did-not-give-microphone-permission", "inboundPhoneCall")
    assert not fits("customer-did-not-answer", "inboundPhoneCall") and fits("customer-did-not-answer", "outboundPhoneCall")
    for reason, last in [
        ("call.start.error-get-org", "queued"),
        ("customer-did-not-answer", "ringing"),
        ("assistant-forwarded-call", "forwarding"),
        ("customer-ended-call", "in-progress"),
        ("scheduled-call-deleted", "scheduled"),
    ]:
        assert phase_of(reason) == last
        steps = plan_steps(rng, 1_000, "outboundPhoneCall", reason)
        assert [s for _, s in steps][-2:] == [last, "ended"]
        assert [t for t, _ in steps] == sorted(t for t, _ in steps)
        call = make_call(rng, 1_000, "outboundPhoneCall", reason, steps)
        item = call.render(steps[-1][0])
        assert ("startedAt" in item) == (last in ("in-progress", "forwarding"))
        assert (item["cost"] > 0) == ("startedAt" in item)


# -- auth ----------------------------------------------------------------------------------------------


async def test_auth_wants_the_bearer_key_on_every_route(session: aiohttp.ClientSession) -> None:
    sim = VapiSim(history=60)
    async with sim.serve() as base:
        status, calls = await get(session, base + "/call")
        assert status == 200 and calls
        for headers in (
            {},
            {"Authorization": "Bearer wrong"},
            {"Authorization": f"Basic {DEFAULT_KEY}"},
            {"Authorization": DEFAULT_KEY},
        ):
            for path in ("/call", "/call/" + calls[0]["id"]):
                status, body = await get(session, base + path, headers=headers)
                assert status == 401 and body["statusCode"] == 401 and body["error"] == "Unauthorized"
                assert DEFAULT_KEY not in str(body)
        assert all(path in ("/call", "/call/" + calls[0]["id"]) for path, _ in sim.requests)
        assert len(sim.requests) == 1  # refused requests are not recorded


# -- limit ---------------------------------------------------------------------------------------------


async def test_limit_defaults_to_100_and_allows_1000(session: aiohttp.ClientSession) -> None:
    sim = VapiSim(rate=2.0, history=1200, burst_every=0)
    async with sim.serve() as base:
        total = len(sim.visible_calls())
        assert total > 1000
        assert len((await get(session, base + "/call"))[1]) == 100
        assert len((await get(session, base + "/call", limit=1000))[1]) == 1000
        assert len((await get(session, base + "/call", limit=7))[1]) == 7
        assert len((await get(session, base + "/call", limit="2.9"))[1]) == 2
        assert (await get(session, base + "/call", limit=0))[1] == []
        for bad, message in [
            (1001, "limit must not be greater than 1000"),
            (-1, "limit must not be less than 0"),
            ("ten", "limit must be a number conforming to the specified constraints"),
            ("nan", "limit must be a number conforming to the specified constraints"),
        ]:
            status, body = await get(session, base + "/call", limit=bad)
            assert status == 400 and body == {"message": [message], "error": "Bad Request", "statusCode": 400}


async def test_limit_over_the_maximum_can_be_clamped(session: aiohttp.ClientSession) -> None:
    sim = VapiSim(rate=2.0, history=1200, burst_every=0, limit_over_max="clamp")
    async with sim.serve() as base:
        status, page = await get(session, base + "/call", limit=5000)
        assert status == 200 and len(page) == 1000


# -- order and ties ------------------------------------------------------------------------------------


async def test_newest_first_with_ties_by_id_descending(session: aiohttp.ClientSession) -> None:
    sim = VapiSim(rate=2.0, history=900, burst_every=0, tie_share=0.2)
    async with sim.serve() as base:
        page = (await get(session, base + "/call", limit=1000))[1]
        keys = [(item["createdAt"], item["id"]) for item in page]
        assert keys == sorted(keys, reverse=True)
        ties = Counter(item["createdAt"] for item in page)
        assert max(ties.values()) >= 2


async def test_shuffled_ties_keep_the_set_and_the_time_order(session: aiohttp.ClientSession) -> None:
    sim = VapiSim(rate=2.0, history=300, burst_every=0, tie_share=0.5, tie_order="shuffle")
    async with sim.serve() as base:
        orders = [[item["id"] for item in (await get(session, base + "/call", limit=1000))[1]] for _ in range(3)]
        page = (await get(session, base + "/call", limit=1000))[1]
        stamps = [item["createdAt"] for item in page]
        assert stamps == sorted(stamps, reverse=True)
        assert len({tuple(o) for o in orders}) > 1 and len({frozenset(o) for o in orders}) == 1


# -- filters -------------------------------------------------------------------------------------------


async def test_created_and_updated_bounds_compare_as_documented(session: aiohttp.ClientSession) -> None:
    sim = VapiSim(rate=0.0, burst_every=0)
    t0 = sim.now()
    tied = sim.add_burst(3, at=t0 - 50, same_instant=True, reason="customer-ended-call", talk=10.0)
    before = sim.add_call(at=t0 - 60, reason="customer-ended-call", talk=5.0)
    after = sim.add_call(at=t0 - 40)  # still in progress
    stamp = iso(round((t0 - 50) * 1000))
    async with sim.serve() as base:

        async def ids(**params: Any) -> set[str]:
            status, page = await get(session, base + "/call", **params)
            assert status == 200, page
            return {item["id"] for item in page}

        assert await ids(createdAtGt=stamp) == {after}
        assert await ids(createdAtGe=stamp) == {after, *tied}
        assert await ids(createdAtLt=stamp) == {before}
        assert await ids(createdAtLe=stamp) == {before, *tied}
        assert await ids(createdAtGe=stamp, createdAtLe=stamp) == set(tied)
        assert await ids(createdAtGt=stamp.replace("Z", "+00:00")) == {after}
        assert await ids(createdAtGt=stamp[:-1]) == {after}  # no offset: UTC
        assert await ids(createdAtLe=iso(round((t0 - 50) * 1000) - 1)) == {before}
        # updatedAt: the last change; the tied calls ended after the one created before them
        updated = {item["id"]: item["updatedAt"] for item in (await get(session, base + "/call"))[1]}
        mark = updated[tied[0]]
        assert before in await ids(updatedAtLt=mark) and tied[0] not in await ids(updatedAtLt=mark)
        assert tied[0] in await ids(updatedAtGe=mark) and tied[0] in await ids(updatedAtLe=mark)
        assert await ids(updatedAtGt=iso(sim.now_ms())) == set()


async def test_id_assistant_and_phone_number_filters(session: aiohttp.ClientSession) -> None:
    sim = VapiSim(rate=1.0, history=600, burst_every=0)
    async with sim.serve() as base:
        page = (await get(session, base + "/call", limit=1000))[1]
        one = page[17]
        assert [c["id"] for c in (await get(session, base + "/call", id=one["id"]))[1]] == [one["id"]]
        assert (await get(session, base + "/call", id="00000000-0000-4000-8000-000000000000"))[1] == []
        assistant = next(c["assistantId"] for c in page if "assistantId" in c)
        mine = (await get(session, base + "/call", limit=1000, assistantId=assistant))[1]
        assert mine and len(mine) == sum(c.get("assistantId") == assistant for c in page)
        number = next(c["phoneNumberId"] for c in page if "phoneNumberId" in c)
        theirs = (await get(session, base + "/call", limit=1000, phoneNumberId=number))[1]
        assert theirs and all(c["phoneNumberId"] == number for c in theirs)
        assert all(c["type"] in ("inboundPhoneCall", "outboundPhoneCall") for c in theirs)
        both = (await get(session, base + "/call", limit=1000, assistantId=assistant, phoneNumberId=number))[1]
        assert {c["id"] for c in both} == {c["id"] for c in mine} & {c["id"] for c in theirs}
        # the limit applies after the filters
        assert len((await get(session, base + "/call", limit=3, assistantId=assistant))[1]) == 3


async def test_bad_parameters_are_refused_the_nestjs_way(session: aiohttp.ClientSession) -> None:
    sim = VapiSim(history=60)
    async with sim.serve() as base:
        status, body = await get(session, base + "/call", sortOrder="DESC", page=2)
        assert status == 400 and body["message"] == ["property page should not exist", "property sortOrder should not exist"]
        status, body = await get(session, base + "/call", createdAtGt="yesterday")
        assert status == 400 and body["message"] == ["createdAtGt must be a valid ISO 8601 date string"]
        async with session.get(base + "/call?limit=5&limit=6", headers=AUTH) as response:
            assert response.status == 400 and (await response.json())["message"] == ["limit must be a string"]
    lenient = VapiSim(history=60, strict_params=False)
    async with lenient.serve() as base:
        status, page = await get(session, base + "/call", sortOrder="DESC", limit=2)
        assert status == 200 and len(page) == 2


# -- get one call --------------------------------------------------------------------------------------


async def test_get_call_by_id(session: aiohttp.ClientSession) -> None:
    sim = VapiSim(history=300)
    future = sim.add_call(at=sim.now() + 30)
    async with sim.serve() as base:
        listed = (await get(session, base + "/call"))[1][0]
        status, one = await get(session, base + "/call/" + listed["id"])
        assert status == 200 and one == listed
        assert await get(session, base + "/call/not-a-uuid") == (
            400,
            {"message": "Validation failed (uuid is expected)", "error": "Bad Request", "statusCode": 400},
        )
        assert (await get(session, base + "/call/00000000-0000-4000-8000-000000000000"))[0] == 404
        assert (await get(session, base + "/call/" + future))[0] == 404  # not created yet
        sim.advance(31)
        status, one = await get(session, base + "/call/" + future)
        assert status == 200 and one["status"] in ("queued", "ringing", "in-progress")
        sim.advance(30)  # queued and ringing take at most 22 s
        assert (await get(session, base + "/call/" + future))[1]["status"] == "in-progress"


# -- calls over time -----------------------------------------------------------------------------------


async def test_a_call_stays_in_progress_across_polls_and_ends_when_told(session: aiohttp.ClientSession) -> None:
    clock = FakeClock()
    sim = VapiSim(clock=clock, rate=0.0, burst_every=0)
    call_id = sim.add_call(call_type="webCall")
    async with sim.serve() as base:
        seen = []
        for _ in range(3):
            clock.advance(20)
            status, item = await get(session, base + "/call/" + call_id)
            seen.append(item)
        assert [i["status"] for i in seen] == ["in-progress"] * 3
        assert all("endedAt" not in i and "cost" not in i and "endedReason" not in i for i in seen)
        assert sim.ground_truth().active == {"in-progress": 1} and sim.ground_truth().ended == 0
        sim.end_call(call_id, "silence-timed-out")
        status, item = await get(session, base + "/call/" + call_id)
        assert item["status"] == "ended" and item["endedReason"] == "silence-timed-out"
        assert item["endedAt"] == item["updatedAt"] == iso(sim.now_ms())
        assert 58.0 <= seconds(item["endedAt"]) - seconds(item["startedAt"]) < 60.0  # queued up to 2 s first
        assert item["cost"] == item["costBreakdown"]["total"] > 0 and item["endedMessage"]
        assert {c["id"] for c in (await get(session, base + "/call", updatedAtGt=seen[-1]["updatedAt"]))[1]} == {call_id}
        truth = sim.ground_truth()
        assert truth.by_outcome["timeout"].count == 1 and truth.active == {} and truth.errors == 1
        with pytest.raises(ValueError, match="already ended"):
            sim.end_call(call_id)
    with pytest.raises(RuntimeError):
        sim.advance(1)


async def test_the_stream_has_every_status_many_reasons_ties_and_bursts(session: aiohttp.ClientSession) -> None:
    sim = VapiSim(seed=11, rate=1.0, burst_every=600, burst_size=150)
    statuses: Counter[str] = Counter()
    async with sim.serve() as base:
        for _ in range(20):  # 20 polls, 90 s apart
            sim.advance(90)
            statuses.update(item["status"] for item in (await get(session, base + "/call", limit=1000))[1])
        assert set(statuses) == {"scheduled", "queued", "ringing", "in-progress", "forwarding", "ended"}
        truth = sim.ground_truth()
        assert len(truth.by_reason) > 60
        assert all(truth.by_outcome[o].count > 0 for o in OUTCOMES)
        page = (await get(session, base + "/call", limit=1000))[1]
        created = Counter(item["createdAt"] for item in page)
        assert max(created.values()) >= 2  # ties
        burst_second = Counter(item["createdAt"][:19] for item in page).most_common(1)[0]
        assert burst_second[1] > 100  # one second holds more calls than a default page


def test_the_stream_is_the_same_however_often_it_is_read() -> None:
    often, once = VapiSim(seed=4, rate=1.5, history=100), VapiSim(seed=4, rate=1.5, history=100)
    for _ in range(60):
        often.advance(10)
        often.visible_calls()
    once.advance(600)
    now = once.now_ms()
    assert [c.render(now) for c in often.visible_calls()] == [c.render(now) for c in once.visible_calls()]
    other = VapiSim(seed=5, rate=1.5, history=100)
    other.advance(600)
    assert {c.id for c in other.visible_calls()}.isdisjoint({c.id for c in once.visible_calls()})


def test_bursts_of_one_instant_and_explicit_lives() -> None:
    sim = VapiSim(rate=0.0, burst_every=0)
    ids = sim.add_burst(120, same_instant=True, reason="customer-ended-call", talk=30.0)
    assert len({sim.calls[i].created_ms for i in ids}) == 1 and len(set(ids)) == 120
    t0 = sim.now()
    odd = sim.add_call(steps=[(t0, "queued"), (t0 + 1, "in-progress"), (t0 + 5, "deletion-failed")], reason=None, usage=Usage())
    sim.advance(60)
    truth = sim.ground_truth()
    assert truth.by_outcome["success"].count == 120 and truth.active == {"deletion-failed": 1}
    assert sim.calls[odd].render(sim.now_ms())["status"] == "deletion-failed"
    assert truth.by_outcome["success"].duration_sum == pytest.approx(120 * 30.0)


# -- ground truth --------------------------------------------------------------------------------------


async def test_ground_truth_equals_what_the_list_shows(session: aiohttp.ClientSession) -> None:
    sim = VapiSim(
        seed=2,
        rate=2.0,
        history=1800,
        burst_every=600,
        burst_size=200,
        tie_share=0.1,
        outcome_weights={**OUTCOME_WEIGHTS, "error": 15},
    )
    still_talking = sim.add_call(at=sim.now() - 1000)
    async with sim.serve() as base:
        sim.advance(30)
        calls = await read_all(session, base)
        truth = sim.ground_truth()
    items = list(calls.values())
    assert len(items) == len(sim.visible_calls())
    assert calls[still_talking]["status"] == "in-progress"
    seen = truth_from_items(items)
    assert truth.ended == sum(seen["counts"].values()) and truth.ended > 3000
    assert Counter(i["status"] for i in items if i["status"] != "ended") == truth.active
    assert Counter(i["endedReason"] for i in items if i["status"] == "ended") == truth.by_reason
    for outcome in OUTCOMES:
        totals = truth.by_outcome[outcome]
        assert totals.count == seen["counts"][outcome] > 0
        assert totals.duration_ms == seen["durations"][outcome]
        assert totals.duration_count == sum(
            1 for i in items if i["status"] == "ended" and "startedAt" in i and outcome_of(i["endedReason"]) == outcome
        )
        assert sorted(totals.durations) == pytest.approx(
            sorted(
                seconds(i["endedAt"]) - seconds(i["startedAt"])
                for i in items
                if i["status"] == "ended" and "startedAt" in i and outcome_of(i["endedReason"]) == outcome
            )
        )
        assert dict(totals.tokens) == dict(seen["tokens"][outcome])
        assert totals.cost == pytest.approx(seen["cost"][outcome], rel=1e-9)
    assert truth.errors == seen["counts"]["error"] + seen["counts"]["timeout"]
    assert truth.by_outcome["cancelled"].duration_count < truth.by_outcome["cancelled"].count  # some never connected
    by_assistant = Counter((i.get("assistantId", ""), outcome_of(i["endedReason"])) for i in items if i["status"] == "ended")
    assert by_assistant == truth.by_assistant and ("", "success") in by_assistant


def test_ground_truth_at_an_earlier_instant_counts_only_what_had_ended() -> None:
    sim = VapiSim(seed=9, rate=1.0)
    sim.advance(1200)
    early, late = sim.ground_truth(sim.now() - 600), sim.ground_truth()
    assert 0 < early.ended < late.ended
    assert early.now == pytest.approx(sim.now() - 600)
    ended_early = sum(1 for c in sim.visible_calls() if c.ended_ms(round(early.now * 1000)) is not None)
    assert early.ended == ended_early
