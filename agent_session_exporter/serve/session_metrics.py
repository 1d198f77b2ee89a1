"""The prometheus_client Collector of the session families: renders each source's totals
(``count/totals.py``: ``SourceView``) with their exemplars; no counting happens here."""

from __future__ import annotations

from typing import Any, Callable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.samples import Exemplar
from prometheus_client.utils import floatToGoString

from agent_session_exporter.count.totals import SessionExemplar, SourceView

#: The name of each family with a series budget (``count/budget.py: FAMILIES``), as exposed.
FAMILY_NAMES = {
    "finished": "agent_sessions_finished",
    "active": "agent_sessions_active",
    "duration": "agent_session_duration_seconds",
    "tokens": "agent_session_tokens",
    "cost": "agent_session_cost_usd",
}


def _exemplar(sample: SessionExemplar) -> Exemplar:
    return Exemplar({"session_id": sample.session_id}, sample.value, sample.timestamp)


class SessionMetrics(Collector):
    """Renders every configured source's aggregates at scrape time, from the snapshots ``views``
    hands it (source name -> SourceView). Exemplars are attached to every sample; only the
    OpenMetrics exposition writes them (the classic text format has no place for them)."""

    def __init__(self, buckets: tuple[float, ...], views: Callable[[], dict[str, SourceView]]) -> None:
        self.buckets = buckets
        self.views = views

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        base = ["source", "provider", "workflow"]
        finished = CounterMetricFamily(
            FAMILY_NAMES["finished"], "Sessions first seen in a terminal status, each once.", labels=base + ["status", "outcome"]
        )
        active = GaugeMetricFamily(
            FAMILY_NAMES["active"], "Sessions last seen in a non-terminal status.", labels=base + ["status"]
        )
        duration = HistogramMetricFamily(FAMILY_NAMES["duration"], "Duration of finished sessions.", labels=base + ["outcome"])
        warnings = CounterMetricFamily("agent_session_warnings", "Provider-reported warnings of finished sessions.", labels=base)
        errors = CounterMetricFamily(
            "agent_session_errors", "Finished sessions with outcome error or timeout, or with an error text.", labels=base
        )
        tokens = CounterMetricFamily(FAMILY_NAMES["tokens"], "Tokens of finished sessions.", labels=base + ["token_type"])
        cost = CounterMetricFamily(FAMILY_NAMES["cost"], "Cost of finished sessions in US dollars.", labels=base + ["model"])
        info = GaugeMetricFamily(
            "agent_session_workflow_info",
            "The display name of each workflow (always 1).",
            labels=["source", "workflow", "workflow_name"],
        )
        bounds = [floatToGoString(b) for b in self.buckets] + ["+Inf"]
        for name, view in self.views().items():
            source = [name, view.provider]
            totals = view.totals
            # Errors and warnings count a session under the workflow of its finished series: they are
            # shown for the workflows that has (at 0 where none), within its budget.
            workflows = {key[0] for key in totals.finished} | set(totals.errors) | set(totals.warnings) or {""}
            for key, value in sorted(totals.finished.items()):
                sample = view.finished_exemplars.get(key)
                finished.add_metric(source + list(key), value, exemplar=_exemplar(sample) if sample else None)
            for (workflow, status), value in sorted(view.active.items()):
                active.add_metric(source + [workflow, status], value)
            for (workflow, outcome), counts in sorted(totals.duration_buckets.items()):
                cumulative: list[Any] = []
                running = 0
                for index, (bound, count) in enumerate(zip(bounds, counts, strict=True)):
                    running += count
                    sample = view.duration_exemplars.get((workflow, outcome, index))
                    cumulative.append((bound, running, _exemplar(sample)) if sample else (bound, running))
                duration.add_metric(source + [workflow, outcome], cumulative, totals.duration_sum.get((workflow, outcome), 0.0))
            for workflow in sorted(workflows):
                labels = source + [workflow]
                if "warnings" in view.figures:
                    warnings.add_metric(labels, totals.warnings.get(workflow, 0.0))
                errors.add_metric(labels, totals.errors.get(workflow, 0))
            for (workflow, kind), used in sorted(totals.tokens.items()):
                tokens.add_metric(source + [workflow, kind], used)
            for (workflow, model), usd in sorted(totals.cost.items()):
                cost.add_metric(source + [workflow, model], usd)
            for workflow, workflow_name in sorted(totals.names.items()):
                info.add_metric([name, workflow, workflow_name], 1)
        yield from (finished, active, duration, warnings, errors, tokens, cost, info)
