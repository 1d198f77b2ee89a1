"""Idle cost: the exporter (its own process) polling the demo's sources against simulators that have
nothing new. Requests per source per cycle, from the exporter's own counters; CPU seconds per hour,
and CPU milliseconds per cycle (the process's CPU time over the cycles its counters say it ran)."""

from __future__ import annotations

import sys
import tempfile
import time
import urllib.request
from collections import defaultdict
from pathlib import Path

from common import chain_shares, cpu_seconds, exporter_process, sim_server
from prometheus_client.parser import text_string_to_metric_families

from agent_session_exporter.demo.runner import DEMO_SOURCES, demo_config


def _counters(url: str) -> tuple[dict[str, float], dict[str, float]]:
    requests: dict[str, float] = defaultdict(float)
    cycles: dict[str, float] = {}
    text = urllib.request.urlopen(url, timeout=10).read().decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "agent_session_exporter_requests_total":
                requests[sample.labels["source"]] += sample.value
            elif sample.name == "agent_session_exporter_collect_duration_seconds_count":
                cycles[sample.labels["source"]] = sample.value
    return requests, cycles


def run(seconds: float = 120, interval: float = 15, warmup: float = 20) -> dict[str, float]:
    with sim_server(rate=0.5, backfill=1800, freeze=True) as base_url, tempfile.TemporaryDirectory() as tmp:
        config = demo_config(base_url, interval=interval)
        raw = {"interval": interval, "state_path": f"{tmp}/state.db", "sources": []}
        for source in config.sources:
            raw["sources"].append(source.model_dump(mode="json", exclude_defaults=True, exclude={"interval"}))
        with exporter_process(Path(tmp), raw) as (process, urls):
            url = urls["listening"]
            time.sleep(warmup)  # the first cycles read the backlog; idle starts after them
            requests_0, cycles_0 = _counters(url)
            cpu_0 = cpu_seconds(process.pid)
            time.sleep(seconds)
            cpu_1 = cpu_seconds(process.pid)
            requests_1, cycles_1 = _counters(url)
    per_cycle = {}
    for name, cycles in cycles_1.items():
        done = cycles - cycles_0.get(name, 0)
        chains = len(chain_shares(DEMO_SOURCES[name]))
        per_cycle[name] = (requests_1[name] - requests_0[name]) / max(done, 1) / chains
    figures = {f"requests_per_cycle[{name}]": value for name, value in sorted(per_cycle.items())}
    figures["requests_per_cycle_max"] = max(per_cycle.values())
    figures["cpu_seconds_per_hour"] = (cpu_1 - cpu_0) * 3600 / seconds
    cycles = sum(done - cycles_0.get(name, 0) for name, done in cycles_1.items())
    figures["cycles"] = cycles
    figures["cpu_ms_per_cycle"] = (cpu_1 - cpu_0) * 1000 / max(cycles, 1)
    figures["measured_seconds"] = seconds
    return figures


if __name__ == "__main__":
    for key, value in run(float(sys.argv[1]) if len(sys.argv) > 1 else 120).items():
        print(f"{key:40s} {value:,.3f}")
