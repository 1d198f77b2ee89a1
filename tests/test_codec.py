"""The persisted form of a source's totals."""

from __future__ import annotations

from agent_session_exporter.count.state import SourceTotals
from agent_session_exporter.keep.codec import totals_from_json, totals_to_json


def test_totals_round_trip_through_their_derived_json():
    totals = SourceTotals(
        finished={("wf", "a", "success"): 2},
        duration_buckets={("wf", "success"): [1, 1]},
        duration_sum={("wf", "success"): 3.5},
        bounds=[1.0],
        warnings={"wf": 2.0},
        errors={"": 1},
        tokens={("wf", "input"): 4.0},
        cost={("", "m"): 0.5},
    )
    assert totals_from_json(totals_to_json(totals)) == totals
    assert totals_from_json(totals_to_json(SourceTotals())) == SourceTotals()


def test_totals_written_before_the_workflow_label_become_workflow_empty():
    old = (
        '{"finished":[["a","success",2]],"duration_buckets":{"success":[1,1]},"duration_sum":{"success":3.5},'
        '"bounds":[1.0],"warnings":2.0,"errors":1,"tokens":{"input":4.0},"cost":{"m":0.5}}'
    )
    assert totals_from_json(old) == SourceTotals(
        finished={("", "a", "success"): 2},
        duration_buckets={("", "success"): [1, 1]},
        duration_sum={("", "success"): 3.5},
        bounds=[1.0],
        warnings={"": 2.0},
        errors={"": 1},
        tokens={("", "input"): 4.0},
        cost={("", "m"): 0.5},
    )
