"""Planning one cycle, directly: a pure function of (state, poll result, now, settings)."""

from __future__ import annotations

from agent_session_exporter.count.cycle import CycleSettings, plan_cycle
from agent_session_exporter.count.labels import LabelLimiter
from agent_session_exporter.count.read_plan import plan_read
from agent_session_exporter.count.state import PendingSession, SourceState
from agent_session_exporter.count.totals import TotalsBuilder
from agent_session_exporter.model import Outcome, Phase, PollResult, SessionRecord

NOW = 1_000_000.0
SETTINGS = CycleSettings(overlap=60.0, settle_after=30.0, max_pending_age=3600.0)


def builder() -> TotalsBuilder:
    return TotalsBuilder((10.0,), LabelLimiter(10), LabelLimiter(10))


def finished(sid: str, key_time: float) -> SessionRecord:
    return SessionRecord(
        session_id=sid, status="completed", phase=Phase.FINISHED, key_time=key_time, outcome=Outcome.SUCCESS, duration_seconds=1.0
    )


def active(sid: str, key_time: float, status: str = "running") -> SessionRecord:
    return SessionRecord(session_id=sid, status=status, phase=Phase.ACTIVE, key_time=key_time)


def test_a_session_counts_once_when_first_seen_finished():
    state = SourceState()
    result = PollResult(records=[finished("a", NOW - 10), finished("a", NOW - 10), active("b", NOW - 5)])
    plan = plan_cycle(state, result, NOW, NOW - 600, NOW - 600, SETTINGS, builder())
    assert plan.finished == 1 and set(plan.delta.counted_add) == {"a"} and set(plan.delta.pending_upsert) == {"b"}
    plan.delta.apply_to(state)
    again = plan_cycle(
        state,
        PollResult(records=[finished("a", NOW - 10), finished("b", NOW - 5)]),
        NOW + 30,
        NOW - 600,
        NOW - 600,
        SETTINGS,
        builder(),
    )
    assert again.finished == 1 and list(again.delta.counted_add) == ["b"] and again.delta.pending_remove == ["b"]


def test_the_plan_changes_nothing_itself_and_notes_what_to_report():
    state = SourceState(pending={"p": PendingSession(NOW - 7200, "running", NOW - 7200)})
    result = PollResult(
        records=[
            active("x", NOW + 3 * 86400),
            SessionRecord(session_id="u", status="weird", phase=Phase.ACTIVE, key_time=NOW - 1, known_status=False),
        ],
        invalid=[("missing_field", None)],
        unreadable={"p": "500"},
    )
    plan = plan_cycle(state, result, NOW, NOW - 600, NOW - 600, SETTINGS, builder())
    assert state.pending.keys() == {"p"}  # untouched until the delta is applied
    assert ("future_timestamp", "x") in plan.invalid and ("missing_field", None) in plan.invalid
    assert plan.unknown_statuses == ["weird"]
    assert plan.dropped == [("p", "unreadable")]


def test_a_failed_poll_still_expires_pending_sessions():
    state = SourceState(
        floor=NOW - 600,
        watermark=NOW - 100,
        pending={"old": PendingSession(NOW - 10, "running", NOW - 4000), "new": PendingSession(NOW - 10, "running", NOW - 10)},
    )
    plan = plan_cycle(state, None, NOW, NOW - 600, NOW - 160, SETTINGS, builder())
    assert plan.dropped == [("old", "unreadable")] and plan.delta.pending_remove == ["old"]
    assert plan.delta.watermark == state.watermark and plan.finished == 0


def test_settling_sessions_count_once_their_end_stops_moving():
    record = SessionRecord(
        session_id="h", status="ended", phase=Phase.SETTLING, key_time=NOW - 100, outcome=Outcome.SUCCESS, finished_at=NOW - 5
    )
    state = SourceState()
    plan = plan_cycle(state, PollResult(records=[record]), NOW, NOW - 600, NOW - 600, SETTINGS, builder())
    assert plan.finished == 0 and "h" in plan.delta.pending_upsert
    plan.delta.apply_to(state)
    plan = plan_cycle(state, PollResult(records=[record]), NOW + 40, NOW - 600, NOW - 600, SETTINGS, builder())
    assert plan.finished == 1


def test_a_pending_session_seen_unchanged_changes_nothing_and_a_cycle_that_changes_nothing_writes_nothing():
    running = SessionRecord(session_id="r", status="running", phase=Phase.ACTIVE, key_time=NOW - 100)
    state = SourceState()
    plan = plan_cycle(state, PollResult(records=[running]), NOW, NOW - 600, NOW - 600, SETTINGS, builder())
    assert plan.delta.changes(state)
    plan.delta.apply_to(state)
    again = plan_cycle(state, PollResult(records=[running]), NOW + 30, NOW - 600, NOW - 600, SETTINGS, builder())
    assert again.delta.pending_upsert == {} and not again.delta.changes(state)
    running.status = "waiting"
    moved = plan_cycle(state, PollResult(records=[running]), NOW + 60, NOW - 600, NOW - 600, SETTINGS, builder())
    assert moved.delta.pending_upsert["r"].status == "waiting" and moved.delta.changes(state)
    assert moved.delta.pending_upsert["r"].first_seen == NOW  # first seen stays when it was first seen


def test_the_settle_clock_and_first_seen_start_when_the_response_arrived_not_at_the_cycle_start():
    """A poll slowed by retries: the cycle began at NOW, its answer came 400 s later. The session's
    end time is that of the answer (the upstream's end_time never stands in for a sighting)."""
    record = SessionRecord(
        session_id="h",
        status="ended",
        phase=Phase.SETTLING,
        key_time=NOW - 900,
        outcome=Outcome.SUCCESS,
        finished_at=NOW - 600,
        observed_at=NOW + 400,
    )
    state = SourceState()
    plan = plan_cycle(state, PollResult(records=[record]), NOW, NOW - 7200, NOW - 7200, SETTINGS, builder())
    pending = plan.delta.pending_upsert["h"]
    assert plan.finished == 0 and pending.first_seen == pending.end_seen_at == NOW + 400
    plan.delta.apply_to(state)
    record.observed_at = NOW + 420  # 20 s later by the exporter's clock: not yet settle_after (30 s)
    plan = plan_cycle(state, PollResult(records=[record]), NOW + 410, NOW - 7200, NOW - 7200, SETTINGS, builder())
    assert plan.finished == 0 and "h" not in plan.delta.pending_upsert  # seen as it was: nothing to write
    assert state.pending["h"].end_seen_at == NOW + 400
    record.observed_at = NOW + 430
    plan = plan_cycle(state, PollResult(records=[record]), NOW + 425, NOW - 7200, NOW - 7200, SETTINGS, builder())
    assert plan.finished == 1


def test_a_pending_session_keyed_at_the_newest_key_time_keeps_the_read_going_past_known_rows():
    """Keys of one-second resolution are shared by many rows: a steady read from the newest key time
    that stopped at the first counted row would leave a pending session of that same second unread
    (until a sweep, which a count probe may make unnecessary)."""
    newest = NOW - 1
    counted = {**{f"c{i}": newest for i in range(150)}, **{f"o{i}": newest - 30 for i in range(300)}}
    state = SourceState(watermark=newest, counted=counted, pending={"p": PendingSession(newest, "running", NOW - 2)})
    for lookups in (False, True):
        read = plan_read(state, NOW - 600, 60.0, 100, reach=newest - 60, sweep_due=False, lookups=lookups)
        assert not read.sweep and not read.stop_at_known or read.stale == ("p",), lookups
    del state.pending["p"]
    quiet = plan_read(state, NOW - 600, 60.0, 100, reach=newest - 60, sweep_due=False, lookups=False)
    assert quiet.since == newest and quiet.stop_at_known


def test_many_pending_sessions_at_the_newest_key_time_are_read_back_to_when_that_is_cheaper_than_lookups():
    newest = NOW - 1
    counted = {**{f"c{i}": newest for i in range(150)}, **{f"o{i}": newest - 30 for i in range(500)}}
    state = SourceState(
        watermark=newest, counted=counted, pending={f"p{i}": PendingSession(newest, "running", NOW - 2) for i in range(300)}
    )
    read = plan_read(state, NOW - 600, 60.0, 100, reach=newest - 60, sweep_due=False, lookups=True)
    assert read.reaches_back and read.stale == () and read.since < newest and not read.stop_at_known


def test_one_session_keyed_far_ahead_amid_present_ones_does_not_carry_the_window_past_them():
    """A single key time hours ahead (a client's wrong clock) among sessions keyed now moves the
    watermark no further than now: following it would put the next read's window past every session
    written meanwhile, and those would never be read."""
    state = SourceState()
    outlier = finished("ahead", NOW + 20 * 3600)
    plan = plan_cycle(
        state, PollResult(records=[outlier, finished("a", NOW - 10)]), NOW, NOW - 600, NOW - 600, SETTINGS, builder()
    )
    assert plan.finished == 2 and plan.delta.watermark == NOW
    plan.delta.apply_to(state)
    cutoff = NOW + 30 - SETTINGS.overlap
    later = plan_cycle(
        state, PollResult(records=[outlier, finished("b", NOW + 25)]), NOW + 30, NOW - 600, cutoff, SETTINGS, builder()
    )
    assert list(later.delta.counted_add) == ["b"]


def test_an_upstream_clock_ahead_of_ours_is_followed_but_not_one_key_time_standing_apart():
    """Key times that run on, each within ``overlap`` of the one before, up to two hours ahead: the
    upstream's clock runs ahead, and the window follows it, so an idle cycle reads one page, not two
    hours. One more key time a day ahead of those stands apart, and is not followed."""
    state = SourceState(watermark=NOW - 30)
    run = [finished(f"s{n}", NOW - 30 + 30 * n) for n in range(242)]  # to NOW + 7200
    plan = plan_cycle(
        state, PollResult(records=[finished("apart", NOW + 86000), *run]), NOW, NOW - 600, NOW - 600, SETTINGS, builder()
    )
    assert plan.finished == 243 and plan.delta.watermark == NOW + 7200


def test_a_sweep_free_in_requests_is_taken_early_only_over_few_known_rows():
    """A thousand-row page makes a sweep of the band free in requests, not in rows: while nothing reaches
    back for pending sessions, a steady read takes what is new alone until the sweep is due."""
    newest = NOW - 1
    for rows, early in ((80, True), (900, False)):
        state = SourceState(watermark=newest, counted={f"c{i}": newest - 50 * i / rows for i in range(rows)})
        read = plan_read(state, NOW - 3600, 600.0, 1000, reach=newest - 600, sweep_due=False, lookups=True)
        assert read.sweep is early and (read.since == newest) is not early, rows
        due = plan_read(state, NOW - 3600, 600.0, 1000, reach=newest - 600, sweep_due=True, lookups=True)
        assert due.sweep and due.since == newest - 600


def test_the_cheapest_read_back_is_the_first_least_costly_of_all_pending_sessions():
    """plan_read prices only the last pending session of each page count; a reference that prices every
    one of them picks the same read."""
    import math
    import random

    from agent_session_exporter.count.read_plan import KEY_SLACK

    rng = random.Random(3)
    compared = reached_back = 0
    for _ in range(1000):
        newest = NOW - rng.uniform(0, 5)
        counted = {f"c{i}": newest - rng.uniform(0, 400) for i in range(rng.randrange(0, 600))}
        pending = {
            f"p{i}": PendingSession(newest - rng.choice([rng.uniform(0, 900), 30.0]), "running", NOW)
            for i in range(rng.randrange(1, 300))
        }
        state = SourceState(watermark=newest, counted=counted, pending=pending)
        page_size, overlap, reach = rng.choice([10, 100, 1000]), 60.0, newest - 60
        read = plan_read(state, NOW - 3600, overlap, page_size, reach=reach, sweep_due=False, lookups=True)
        # The reference, for the steady read (what plan_read takes unless a sweep is as cheap).
        known = state.known_rows()
        oldest_known = min(reach, max(NOW - 3600, newest - overlap))
        density = known.count(oldest_known) / max(newest - oldest_known, 1.0)

        def pages(start: float, known=known, oldest_known=oldest_known, density=density, page_size=page_size) -> int:
            return int(known.count(start) + max(0.0, oldest_known - start) * density) // page_size + 1

        older = sorted(((p.key_time, sid) for sid, p in pending.items() if p.key_time <= newest), reverse=True)
        best, reach_to = 1 + len(older), None
        for position, (key_time, _) in enumerate(older):
            if pages(key_time) + len(older) - position - 1 < best:
                best, reach_to = pages(key_time) + len(older) - position - 1, key_time
        if not read.sweep and older:
            expected = newest if reach_to is None else reach_to - KEY_SLACK
            assert math.isclose(read.since, expected), (read, reach_to)
            assert set(read.stale) == {sid for key_time, sid in older if reach_to is None or key_time < reach_to}
            compared += 1
            reached_back += reach_to is not None
    assert compared > 100 and 20 < reached_back < compared
