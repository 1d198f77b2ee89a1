"""count/hints.py: a source's queue of hints (one per id, bounded, let out at a rate) and the
idempotency keys a pusher sends (kept 10 minutes, 10,000 at most)."""

from __future__ import annotations

import asyncio

import pytest

from agent_session_exporter.count.hints import Hint, HintQueue, SeenKeys

from .helpers import FakeClock


def hint(session_id: str, at: float = 0.0) -> Hint:
    return Hint("ka", session_id, at)


def test_a_queue_holds_one_hint_per_id_the_first_one():
    queue = HintQueue(per_minute=600, clock=FakeClock())
    assert queue.put(hint("a", at=1.0)) and queue.put(hint("b", at=2.0)) and queue.put(hint("a", at=3.0))
    assert len(queue) == 2
    chosen, skipped = queue.take()
    assert [(h.session_id, h.received_at) for h in chosen] == [("a", 1.0), ("b", 2.0)] and skipped == []
    assert len(queue) == 0 and queue.ready_in() is None


def test_a_full_queue_drops_new_ids_but_takes_ids_already_waiting():
    queue = HintQueue(per_minute=60, max_waiting=2, clock=FakeClock())
    assert queue.put(hint("a")) and queue.put(hint("b"))
    assert not queue.put(hint("c"))
    assert queue.put(hint("a"))  # already waiting: served by the same lookup
    assert len(queue) == 2


def test_hints_are_let_out_at_the_rate_in_bursts_of_a_tenth_of_it():
    clock = FakeClock()
    queue = HintQueue(per_minute=60, clock=clock)  # one a second, bursts of 6
    for n in range(20):
        queue.put(hint(f"s{n}"))
    chosen, _ = queue.take()
    assert [h.session_id for h in chosen] == [f"s{n}" for n in range(6)]
    assert queue.take() == ([], []) and queue.ready_in() == 1.0
    clock.advance(2.5)
    assert [h.session_id for h in queue.take()[0]] == ["s6", "s7"]
    clock.advance(600)  # a long quiet spell refills the bucket up to the burst, no further
    assert len(queue.take()[0]) == 6 and len(queue) == 6


def test_hints_skipped_as_needing_no_lookup_cost_nothing():
    queue = HintQueue(per_minute=6, clock=FakeClock())  # a burst of one
    for session_id in ("counted-1", "new", "counted-2"):
        queue.put(hint(session_id))
    chosen, skipped = queue.take(skip=lambda session_id: session_id.startswith("counted"))
    assert [h.session_id for h in chosen] == ["new"]
    assert [h.session_id for h in skipped] == ["counted-1", "counted-2"]
    assert len(queue) == 0


async def test_wait_returns_when_a_hint_arrives_or_at_its_timeout():
    queue = HintQueue(per_minute=600)
    assert await queue.wait(0.01) is False
    waiter = asyncio.create_task(queue.wait(30))
    await asyncio.sleep(0)
    queue.put(hint("a"))
    assert await asyncio.wait_for(waiter, 5) is True


async def test_wait_sleeps_until_the_rate_lets_a_waiting_hint_out():
    clock = FakeClock()
    queue = HintQueue(per_minute=600, clock=clock)  # one every 0.1 s, bursts of 60
    for n in range(61):
        queue.put(hint(f"s{n}"))
    assert len(queue.take()[0]) == 60 and len(queue) == 1
    assert queue.ready_in() == pytest.approx(0.1)
    waiter = asyncio.create_task(queue.wait(5))
    await asyncio.sleep(0)
    assert not waiter.done()
    clock.advance(0.15)
    assert await asyncio.wait_for(waiter, 5) is True
    assert [h.session_id for h in queue.take()[0]] == ["s60"]


def test_idempotency_keys_are_kept_ten_minutes():
    clock = FakeClock()
    keys = SeenKeys(clock=clock)
    assert keys.first_time("k1") and not keys.first_time("k1")
    clock.advance(599)
    assert not keys.first_time("k1")  # and seen again: kept from now
    clock.advance(599)
    assert not keys.first_time("k1")
    clock.advance(601)
    assert keys.first_time("k1")
    assert len(keys) == 1


def test_at_most_ten_thousand_idempotency_keys_are_kept_the_oldest_forgotten():
    clock = FakeClock()
    keys = SeenKeys(clock=clock)
    for n in range(10_001):
        assert keys.first_time(n)
    assert len(keys) == 10_000
    assert keys.first_time(0)  # forgotten first
    assert not keys.first_time(10_000)
