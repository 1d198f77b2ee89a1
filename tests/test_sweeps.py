"""When the overlap window is swept, and what a probe standing in for a sweep compares with."""

from __future__ import annotations

from agent_session_exporter.count.state import PendingSession, SourceState
from agent_session_exporter.count.sweeps import SweepSchedule

NOW = 1_000_000.0


def test_a_sweep_reaches_back_from_the_watermark_it_was_made_at_and_is_due_once_per_overlap():
    sweeps = SweepSchedule(overlap=60.0)
    assert sweeps.due(NOW) and not sweeps.may_probe  # the first cycle sweeps
    assert sweeps.reach(NOW - 3600, NOW - 5) == NOW - 65
    sweeps.swept(NOW, NOW - 5)
    # The watermark moves on; late writes since may be keyed behind the one at the sweep.
    assert sweeps.reach(NOW - 3600, NOW + 100) == NOW - 65
    assert not sweeps.due(NOW + 59) and sweeps.due(NOW + 60) and sweeps.may_probe
    assert sweeps.reach(NOW, NOW - 5) == NOW  # never behind the floor


def test_a_probe_that_finds_late_rows_or_cannot_tell_makes_the_next_cycle_sweep():
    sweeps = SweepSchedule(overlap=60.0)
    sweeps.swept(NOW, NOW - 5)
    for answer in (False, None):
        sweeps.probed(answer, NOW + 60, NOW + 50)
        assert sweeps.due(NOW + 61) and not sweeps.may_probe and sweeps.last_sweep == NOW
        sweeps.swept(NOW, NOW - 5)
    sweeps.probed(True, NOW + 60, NOW + 50)  # vouches for what was written before this cycle began
    assert sweeps.last_sweep == NOW + 60 and sweeps.reach(NOW - 3600, NOW + 58) == NOW - 10


def test_the_rows_known_are_the_counted_the_pending_and_the_rows_that_are_not_sessions():
    sweeps = SweepSchedule(overlap=60.0)
    sweeps.note_skipped({"log-x": NOW - 40, "log-old": NOW - 200}, keep_from=NOW - 100)
    state = SourceState(counted={"a": NOW - 50, "b": NOW - 10}, pending={"p": PendingSession(NOW - 30, "running", NOW - 30)})
    known = sweeps.known_rows(state)
    assert known.count(NOW - 60) == 4 and known.count(NOW - 45, NOW - 20) == 2 and known.newest == NOW - 10
    assert sweeps.skipped_rows == {"log-x": NOW - 40}
