"""Pushes: how soon a Kapso failure, and a Syntropic137 session, is counted at a long interval, with
and without pushes (Kapso's webhooks; Syntropic137's activity stream).

Three processes: the simulators (``push_sim.py``: Kapso's executions at a known rate, a known share
of them failing, each failure and handoff pushed as a signed webhook, every tenth delivered twice;
Syntropic137's sessions at the same rate, each end a frame of its activity feed), the exporter
(four sources polling them every ``interval``, 5 minutes in the full run: ``ka-push`` takes the
webhooks, ``st-push`` reads the stream (``push: sse``), ``ka-poll`` and ``st-poll`` only poll), and
this one, which scrapes ``/metrics`` every 0.1 s. After ``traffic`` seconds the simulators end
every session and start no more, and this waits until every source has counted everything.

Figures: seconds from a Kapso failure's end, and from any Syntropic137 session's end (when the
simulated API shows it), to its count on ``/metrics``, p50 and p99, per source (the k-th to end is
matched with the k-th count: the exporter counts them in that order within a second, and a poll
counts all it finds at once); the lookups pushes caused per push received (a webhook event, a frame
naming a session); and whether each source's totals equal what the simulator finished.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from common import BENCH, exporter_process, stop
from prometheus_client.parser import text_string_to_metric_families

from agent_session_exporter.demo.pushes import DEMO_WEBHOOK_SECRET
from agent_session_exporter.demo.server import DEMO_KEYS, KAPSO_WORKFLOWS, PREFIXES

SOURCES = ("ka-push", "ka-poll", "st-push", "st-poll")
#: Each source's provider, and the counter whose k-th increment is the k-th session's count.
PROVIDER = {source: "kapso" if source.startswith("ka") else "syntropic137" for source in SOURCES}
MEASURED = {"kapso": "errors", "syntropic137": "finished"}


def _get(url: str, data: bytes | None = None) -> Any:
    with urllib.request.urlopen(urllib.request.Request(url, data=data), timeout=10) as response:
        return response.read()


def _scrape(url: str) -> dict[str, dict[str, float]]:
    """Per source: errors counted, sessions counted, push lookups, pushes received (webhook events of
    every outcome; frames of the stream that named a session)."""
    figures = {source: {"errors": 0.0, "finished": 0.0, "lookups": 0.0, "pushes": 0.0} for source in SOURCES}
    for family in text_string_to_metric_families(_get(url).decode()):
        for sample in family.samples:
            source = sample.labels.get("source")
            if source not in figures:
                continue
            if sample.name == "agent_session_errors_total":
                figures[source]["errors"] += sample.value
            elif sample.name == "agent_sessions_finished_total":
                figures[source]["finished"] += sample.value
            elif sample.name == "agent_session_exporter_cycle_requests_total" and sample.labels["kind"] == "push":
                figures[source]["lookups"] += sample.value
            elif sample.name == "agent_session_exporter_pushes_total" or (
                sample.name == "agent_session_exporter_push_stream_frames_total"
                and sample.labels["type"] == "session_completed"
                and sample.labels["outcome"] == "accepted"
            ):
                figures[source]["pushes"] += sample.value
    return figures


def _percentile(values: list[float], q: int) -> float:
    if len(values) < 2:
        return values[0] if values else float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def _config(base_url: str, interval: float) -> dict[str, Any]:
    """The exporter's four sources: Kapso and Syntropic137, each polled only and with its pushes."""
    kapso = {
        "provider": "kapso",
        "base_url": base_url + PREFIXES["kapso"],
        "api_key": DEMO_KEYS["kapso"],
        "workflow_ids": list(KAPSO_WORKFLOWS),
        "initial_lookback": "10m",
    }
    syntropic = {"provider": "syntropic137", "base_url": base_url + PREFIXES["syntropic137"], "initial_lookback": "10m"}
    # The poll-only sources first: the exporter spreads its sources' second cycles over the interval,
    # and the first source's is not delayed (so its figures are those of a steady interval).
    return {
        "interval": interval,
        "sources": [
            {"name": "ka-poll", **kapso},
            {"name": "st-poll", **syntropic},
            {"name": "ka-push", **kapso, "webhook_secret": DEMO_WEBHOOK_SECRET},
            {"name": "st-push", **syntropic, "push": "sse"},
        ],
    }


def run(traffic: float = 600, interval: float = 300, rate: float = 0.5) -> dict[str, float]:
    simulator = subprocess.Popen(
        [sys.executable, str(BENCH / "push_sim.py"), "--rate", str(rate)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert simulator.stdout is not None and simulator.stdin is not None
        base_url = simulator.stdout.readline().strip()
        with (
            tempfile.TemporaryDirectory() as tmp,
            exporter_process(
                Path(tmp),
                _config(base_url, interval),
                "--web.webhook-address",
                "127.0.0.1:0",
                announced=("listening", "listening for webhooks"),
                wait=30,
            ) as (_, urls),
        ):
            simulator.stdin.write(f"{urls['listening for webhooks'].removesuffix('/<source>')}/ka-push\n")
            simulator.stdin.flush()
            return _measure(base_url, urls["listening"], traffic, interval)
    finally:
        stop(simulator)


def _exact(figures: dict[str, float], truth: dict[str, Any]) -> bool:
    return figures["finished"] == truth["finished"] and figures["errors"] == truth["errors"]


def _measure(base_url: str, metrics: str, traffic: float, interval: float) -> dict[str, float]:
    counts: dict[str, list[tuple[float, float]]] = {source: [] for source in SOURCES}  # (when, count) as it changes
    started = time.time()
    finished_at: float | None = None
    truth: dict[str, Any] = {}
    while True:
        now = time.time()
        latest = _scrape(metrics)
        for source in SOURCES:
            count = latest[source][MEASURED[PROVIDER[source]]]
            if not counts[source] or counts[source][-1][1] != count:
                counts[source].append((now, count))
        if finished_at is None and now - started >= traffic:
            finished_at = now
            _get(base_url + "/bench/finish", b"")
            truth = json.loads(_get(base_url + "/bench/truth"))
        if finished_at is not None:
            if all(_exact(latest[s], truth[PROVIDER[s]]) for s in SOURCES):
                break
            if now - finished_at > interval * 1.5 + 30:  # bounded: a source that never gets there is not exact
                break
        time.sleep(0.1)
    truth = json.loads(_get(base_url + "/bench/truth"))
    figures: dict[str, float] = {"seconds": time.time() - started}
    for provider in ("kapso", "syntropic137"):
        figures[f"{provider}_sessions"] = len(truth[provider]["ends"])
    for source in SOURCES:
        ends = sorted(at for _, at in truth[PROVIDER[source]]["ends"])
        delays = []
        for k, ended in enumerate(ends, start=1):
            counted = next((when for when, count in counts[source] if count >= k), None)
            if counted is not None:
                delays.append(max(0.0, counted - ended))
        figures[f"{source}_p50"] = _percentile(delays, 50)
        figures[f"{source}_p99"] = _percentile(delays, 99)
        figures[f"{source}_exact"] = float(
            _exact(latest[source], truth[PROVIDER[source]]) and latest[source][MEASURED[PROVIDER[source]]] == len(ends)
        )
        pushes = latest[source]["pushes"]
        figures[f"{source}_pushes"] = pushes
        figures[f"{source}_lookups_per_push"] = latest[source]["lookups"] / pushes if pushes else float("nan")
    figures["pushes_sent"] = sum(truth["sent"].values())
    figures["streams_opened"] = truth["streams"]
    return figures


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--traffic", type=float, default=600)
    parser.add_argument("--interval", type=float, default=300)
    args = parser.parse_args()
    print(json.dumps(run(args.traffic, args.interval), indent=2))
