"""serve/webhooks.py: Kapso's webhooks as hints. Forged, replayed, duplicated, reordered, batched,
oversized, malformed and unknown-source deliveries are each answered and counted; none changes a
count but through a lookup, none is echoed."""

from __future__ import annotations

import json

import pytest

from agent_session_exporter.demo.pushes import kapso_event, sign
from agent_session_exporter.demo.server import KAPSO_WORKFLOWS
from agent_session_exporter.serve.webhooks import signature_ok

from .pushstack import SECRET, push_stack


@pytest.fixture
async def stack(clock):
    async with push_stack(clock) as stack:
        assert await stack.poller.run_cycle()  # the first poll: nothing yet
        yield stack


def test_the_signature_is_the_hex_hmac_of_the_raw_body():
    body = b'{"a": 1}'
    good = sign(SECRET, body)
    assert signature_ok(SECRET.encode(), body, good) and signature_ok(SECRET.encode(), body, "sha256=" + good.upper())
    assert not signature_ok(SECRET.encode(), body + b" ", good)
    assert not signature_ok(b"another-secret-0123456789", body, good)
    for bad in (None, "", "zz", good[:-1], "\udcff" + good, "é" * 64):
        assert not signature_ok(SECRET.encode(), body, bad)


async def test_a_signed_failure_is_counted_at_once_through_one_lookup(stack):
    execution = stack.execution()
    stack.tick(2)  # it failed
    async with stack.serving():
        assert await stack.push(execution) == (200, "ok\n")
        await stack.until(lambda: stack.counted() == 1)
    assert stack.pushes("accepted") == 1 and stack.lookups() == 1
    samples = stack.samples()
    assert (
        samples[("agent_session_exporter_push_to_count_seconds_count", frozenset({("source", "ka"), ("provider", "kapso")}))] == 1
    )
    assert await stack.poller.run_cycle()
    assert stack.counted() == 1  # the next poll reads it again: counted once


async def test_forged_deliveries_are_refused_and_counted_and_look_nothing_up(stack):
    execution = stack.execution()
    stack.tick(2)
    event = kapso_event(execution)
    body = json.dumps(event).encode()
    async with stack.serving():
        assert await stack.post(event, secret=None) == (401, "bad signature\n")
        assert await stack.post(event, secret="not-the-secret-0123456789") == (401, "bad signature\n")
        assert await stack.post(body + b" ", headers={"X-Webhook-Signature": sign(SECRET, body)}) == (401, "bad signature\n")
        assert stack.pushes("bad_signature") == 3
        assert len(stack.queue) == 0
    assert stack.lookups() == 0 and stack.counted() == 0
    assert await stack.poller.run_cycle()
    assert stack.counted() == 1  # the poll counts it: a forged push neither counts nor hides a session


async def test_a_replayed_delivery_is_a_duplicate_and_past_the_horizon_looks_nothing_up(stack):
    execution = stack.execution()
    stack.tick(2)
    async with stack.serving():
        assert await stack.push(execution, key="delivery-1") == (200, "ok\n")
        await stack.until(lambda: stack.counted() == 1)
        assert await stack.push(execution, key="delivery-1") == (200, "ok\n")  # Kapso's retry, or a replay
        assert stack.pushes("duplicate") == 1
        stack.clock.advance(601)  # past the 10 minutes idempotency keys are kept
        assert await stack.push(execution, key="delivery-1") == (200, "ok\n")
        assert stack.pushes("accepted") == 2
        await stack.until(lambda: len(stack.queue) == 0)
    assert stack.lookups() == 1 and stack.counted() == 1  # counted already: not looked up again


async def test_the_same_event_delivered_twice_is_a_duplicate(stack):
    execution = stack.execution()
    stack.tick(2)
    event = kapso_event(execution)
    async with stack.serving():
        assert await stack.post(event) == (200, "ok\n")
        assert await stack.post(event) == (200, "ok\n")  # a new idempotency key, the same event
        assert await stack.post([event, event], key=None) == (200, "ok\n")
        await stack.until(lambda: stack.counted() == 1)
    assert stack.pushes("accepted") == 1 and stack.pushes("duplicate") == 3
    assert stack.lookups() == 1


async def test_reordered_events_count_each_execution_once_as_its_lookup_shows_it(stack):
    first, second = stack.execution(seconds_ago=20), stack.execution(seconds_ago=10)
    stack.tick(2)
    handoff = {
        **kapso_event(first),
        "event": "workflow.execution.handoff",
        "status": "handoff",
        "occurred_at": "2020-01-01T00:00:00Z",
    }  # sent before the failure, arriving after it
    async with stack.serving():
        assert await stack.push(second) == (200, "ok\n")
        assert await stack.push(first) == (200, "ok\n")
        await stack.until(lambda: stack.counted() == 2)
        assert await stack.post(handoff) == (200, "ok\n")
        await stack.until(lambda: len(stack.queue) == 0)
    assert stack.pushes("accepted") == 3 and stack.lookups() == 2 and stack.counted() == 2
    assert total_active(stack) == 0  # the late handoff did not make it active again


def total_active(stack) -> float:
    return sum(
        v for (name, labels), v in stack.samples().items() if name == "agent_sessions_active" and dict(labels)["source"] == "ka"
    )


async def test_a_batch_names_each_execution(stack):
    executions = [stack.execution(seconds_ago=5 + n) for n in range(3)]
    stack.tick(2)
    batch = {
        "type": "workflow.execution.failed",
        "batch": True,
        "data": [kapso_event(e) for e in executions] + [{"event": "workflow.execution.failed"}],
    }
    async with stack.serving():
        assert await stack.post(batch, headers={"X-Webhook-Batch": "true", "X-Batch-Size": "4"}) == (200, "ok\n")
        await stack.until(lambda: stack.counted() == 3)
    assert stack.pushes("accepted") == 3 and stack.pushes("malformed") == 1 and stack.lookups() == 3


async def test_an_oversized_body_is_refused_before_it_is_read_whole(stack):
    body = b'{"pad": "' + b"x" * (1024 * 1024) + b'"}'
    assert await stack.post(body) == (413, "body too large\n")
    assert stack.pushes("oversized") == 1 and len(stack.queue) == 0


@pytest.mark.parametrize("body", [b"not json", b"[]", json.dumps({"event": "whatsapp.message.received"}).encode()])
async def test_a_signed_body_naming_no_execution_is_malformed(stack, body):
    status, _ = await stack.post(body)
    assert status == (200 if body == b"[]" else 400)
    assert stack.pushes("malformed") == (0 if body == b"[]" else 1) and len(stack.queue) == 0


async def test_a_push_for_a_source_that_takes_none_is_unknown(stack):
    execution = stack.execution()
    for source in ("nope", "kb"):  # kb is configured, without a webhook_secret
        assert await stack.push(execution, source=source) == (404, "no source of this name takes Kapso webhooks\n")
    assert stack.pushes("unknown_source", source="") == 2 and len(stack.queue) == 0
    async with stack.client.get(f"{stack.url}/webhooks/kapso/ka") as response:
        assert response.status == 405


async def test_a_push_for_a_workflow_the_source_does_not_poll_is_ignored(stack):
    execution = stack.execution(workflow="wf-elsewhere")
    stack.tick(2)
    assert await stack.push(execution) == (200, "ok\n")
    assert stack.pushes("unknown_workflow") == 1 and len(stack.queue) == 0
    assert await stack.push(stack.execution(workflow=KAPSO_WORKFLOWS[1])) == (200, "ok\n")
    assert stack.pushes("accepted") == 1


async def test_the_lookup_counts_not_the_push(stack):
    execution = stack.execution(duration=600)  # still running
    async with stack.serving():
        assert await stack.push(execution) == (200, "ok\n")  # says failed
        await stack.until(lambda: total_active(stack) == 1)
    assert stack.counted() == 0 and stack.lookups() == 1


async def test_no_answer_or_log_line_echoes_what_a_push_sent(stack, logs):
    marker = "ECHO-ME-7f3a"
    execution = stack.execution()
    stack.tick(2)
    event = {**kapso_event(execution), "error": {"message": marker}, "workflow_execution_id": marker * 30}
    answers = [
        await stack.post(event),
        await stack.post(event, secret=None),
        await stack.post(marker.encode()),
        await stack.post(event, source=marker),
        await stack.post(event, headers={"X-Idempotency-Key": marker, "X-Webhook-Event": marker}),
    ]
    assert all(marker not in text for _, text in answers)
    assert marker not in json.dumps(logs()) and SECRET not in json.dumps(logs())
    assert stack.pushes("bad_signature") == 1 and stack.pushes("unknown_source", source="") == 1
