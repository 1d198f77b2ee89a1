"""The fast writer of both exposition formats gives, family by family, exactly what prometheus_client
writes (split by ``split_families``), for every kind of metric, exemplars, timestamps and hostile label
values; and what it cannot write alike is written by prometheus_client itself."""

from __future__ import annotations

import random

import pytest
from prometheus_client import CollectorRegistry, Counter, Enum, Gauge, Histogram, Info, Summary
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.samples import Exemplar

from agent_session_exporter.count.state import SourceTotals
from agent_session_exporter.count.totals import SessionExemplar, SourceView
from agent_session_exporter.serve import textformat
from agent_session_exporter.serve.selfmetrics import SelfMetrics
from agent_session_exporter.serve.session_metrics import SessionMetrics
from agent_session_exporter.serve.textformat import render_families, split_families

from .helpers import make_source

HOSTILE = [
    "",
    "plain",
    'quote"d',
    "back\\slash",
    "new\nline",
    "carriage\rreturn",
    "tab\there",
    "ünïcode ☃",
    "# HELP x_total X.",
    "} 1.0\nfake 2",
    "\\n",
    "x" * 300,
]


def prometheus_client_blocks(collector, openmetrics: bool):
    return split_families((generate_openmetrics if openmetrics else generate_latest)(collector))


def assert_alike(collector, fast: bool = True) -> None:
    """Alike in both formats; ``fast``: written by the fast writer itself (prometheus_client's writer
    would fail if it were called)."""
    for openmetrics in (False, True):
        expected = prometheus_client_blocks(collector, openmetrics)
        with pytest.MonkeyPatch.context() as patch:
            if fast:
                for name in ("generate_latest", "generate_openmetrics"):
                    patch.setattr(textformat, name, lambda collector: pytest.fail("not written by the fast writer"))
            assert render_families(collector, openmetrics) == expected


def test_every_kind_of_metric_is_written_as_prometheus_client_writes_it():
    rng = random.Random(5)
    registry = CollectorRegistry(auto_describe=False)
    counter = Counter("demo_requests", 'Requests "quoted" with a \\ and a\nnewline.', ["source", "code"], registry=registry)
    gauge = Gauge("demo_up", "Up.", ["source"], registry=registry)
    histogram = Histogram("demo_seconds", "Durations.", ["source"], buckets=(0.1, 1, 5, 1e7), registry=registry, unit="seconds")
    summary = Summary("demo_size", "Sizes.", ["source"], registry=registry)
    Info("demo_build", "Build.", registry=registry).info({"version": "1.0", "odd": 'v"1\n'})
    Enum("demo_state", "State.", states=["a", "b"], registry=registry).state("b")
    Gauge("demo_empty", "Nothing yet.", ["source"], registry=registry)
    for value in HOSTILE:
        counter.labels(value, str(rng.randrange(600))).inc(rng.choice([1, 0.1, 1e20, 1e-9, 12345678.9]))
        gauge.labels(value).set(rng.choice([float("inf"), float("-inf"), float("nan"), -3, 0, 1.5e300]))
        histogram.labels(value).observe(rng.random() * 10, exemplar={"session_id": value[:100] or "x", "z": "1"})
        summary.labels(value).observe(rng.random())
    assert_alike(registry)


def test_families_of_a_custom_collector_with_timestamps_and_exemplars_are_written_alike():
    class Custom:
        def collect(self):
            counter = CounterMetricFamily("demo_finished", "Finished.", labels=["workflow", "status"])
            for value in HOSTILE:
                counter.add_metric(
                    [value, "ok"],
                    3,
                    timestamp=1_780_000_000.25,
                    exemplar=Exemplar({"session_id": value + "s"}, 1.0, 1_780_000_000.5),
                )
            gauge = GaugeMetricFamily("demo_active", "Active.", labels=["status"])
            gauge.add_metric(["running"], 2)
            histogram = HistogramMetricFamily("demo_duration_seconds", "Durations.", labels=["outcome"])
            histogram.add_metric(["success"], [("1.0", 1, Exemplar({"session_id": "a"}, 0.5, 1.0)), ("+Inf", 2)], 3.5)
            yield from (counter, gauge, histogram, Metric("demo_nothing", "No samples.", "gauge"))

    assert_alike(Custom())


def test_the_exporters_own_collectors_are_written_alike():
    metrics = SelfMetrics(CollectorRegistry(auto_describe=False))
    source = metrics.for_source(make_source("dify"))
    for reason in ("missing_field", "bad_timestamp"):
        source.invalid(reason, 3)
    source.request("200")
    source.cycle_took(0.3)
    source.up(True, 1_780_000_000.123)
    source.unknown_status('weird "status"\n')
    assert_alike(source.registry)
    totals = SourceTotals(
        finished={("wf", "succeeded", "success"): 5, ('w"f', "failed", "error"): 2},
        duration_buckets={("wf", "success"): [1, 2, 0, 2]},
        duration_sum={("wf", "success"): 9.5},
        bounds=[1.0, 5.0, 10.0],
        errors={'w"f': 2},
        warnings={"wf": 1.0},
        tokens={("wf", "total"): 1e6},
        cost={("wf", "gpt\n4"): 0.25},
        names={"wf": "Name\\x"},
    )
    view = SourceView(
        provider="dify",
        totals=totals,
        active={("wf", "running"): 3},
        finished_exemplars={("wf", "succeeded", "success"): SessionExemplar("s-1", 1.0, 1.78e9)},
        duration_exemplars={("wf", "success", 1): SessionExemplar("s-2", 2.5, 1.78e9 + 0.5)},
    )
    assert_alike(SessionMetrics((1.0, 5.0, 10.0), lambda: {"src": view}))


@pytest.mark.parametrize("name", ["demo:colon", "9starts_with_a_digit"])
def test_a_name_outside_the_legacy_set_is_written_by_prometheus_client(name):
    class Odd:
        def collect(self):
            gauge = GaugeMetricFamily("demo_ok", "Ok.", labels=["a"])
            gauge.add_metric(["1"], 1)
            odd = GaugeMetricFamily(name, "Odd.")
            odd.add_metric([], 2)
            yield from (gauge, odd)

    assert_alike(Odd(), fast=False)


def test_created_samples_go_where_the_classic_format_puts_them():
    class Created:
        def collect(self):
            counter = CounterMetricFamily("demo_events", "Events.", labels=["a"], created=1_780_000_000.0)
            counter.add_metric(["x"], 2, created=1_780_000_000.0)
            yield counter

    assert_alike(Created())
