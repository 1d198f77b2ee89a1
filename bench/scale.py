"""Scale: one exporter process with many sources of mixed providers (500 in the full run) against the
five simulators in another process, each source every 30 s, spread over the interval.

This script is the third process: it scrapes ``/metrics`` every second as Prometheus does
(OpenMetrics, gzip) while the sources cycle, and reads the exporter's RSS and CPU time from /proc.
Figures: scrape latency p50/p99, series exposed, RSS, CPU seconds per hour, and the worst
``agent_session_exporter_cycle_lag_seconds`` seen (how much later than its interval a source's
cycle started). The first interval (every source reading its backlog at once) is warm-up; the
figures are taken after it.
"""

from __future__ import annotations

import gzip
import json
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from common import cpu_seconds, exporter_process, rss_mb, sim_server
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from agent_session_exporter.demo.server import DEMO_KEYS, HONEYHIVE_PROJECT, PREFIXES

LAG = "agent_session_exporter_cycle_lag_seconds{"
ACCEPT = "application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.3,*/*;q=0.2"


def source_entries(base_url: str, count: int) -> list[dict[str, object]]:
    """``count`` sources, the providers in turn (HoneyHive through its search, the default API)."""
    kinds = [
        ("whatabot", {}),
        ("dify", {}),
        ("syntropic137", {}),
        ("honeyhive", {"project": HONEYHIVE_PROJECT, "settle_after": "10s"}),
        ("kapso", {}),
    ]
    entries = []
    for n in range(count):
        provider, extra = kinds[n % len(kinds)]
        entry: dict[str, object] = {
            "name": f"{provider}-{n:03d}",
            "provider": provider,
            "base_url": base_url + PREFIXES[provider],
            "initial_lookback": "10m",
            **extra,
        }
        if provider != "syntropic137":
            entry["api_key"] = DEMO_KEYS[provider]
        entries.append(entry)
    return entries


def scrape(url: str) -> tuple[float, str]:
    request = urllib.request.Request(url, headers={"Accept": ACCEPT, "Accept-Encoding": "gzip"})
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=30) as response:
        body = response.read()
        took = time.perf_counter() - started
        if response.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
    return took, body.decode().removesuffix("# EOF\n")


def series_and_lag(text: str) -> tuple[int, float]:
    """Samples exposed, and the worst cycle lag among them (read line by line: cheap enough to do
    after every scrape; ``check`` parses one exposition fully, once)."""
    series, lag = 0, 0.0
    for line in text.splitlines():
        if line and not line.startswith("#"):
            series += 1
            if line.startswith(LAG):
                lag = max(lag, float(line.rsplit(" ", 1)[1]))
    return series, lag


def check(text: str) -> int:
    """Parse one whole exposition as Prometheus's client library does; its sample count."""
    return sum(len(family.samples) for family in text_string_to_metric_families(text + "# EOF\n"))


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def run(sources: int = 500, seconds: float = 150, interval: float = 30) -> dict[str, float]:
    with sim_server(rate=0.5, backfill=600) as base_url, tempfile.TemporaryDirectory() as tmp:
        config = {"interval": interval, "state_path": f"{tmp}/state.db", "sources": source_entries(base_url, sources)}
        with exporter_process(Path(tmp), config) as (process, urls):
            url = urls["listening"]
            warmup_end = time.monotonic() + interval
            while time.monotonic() < warmup_end:  # every source's first cycle, and the spread-out second
                scrape(url)
                time.sleep(1)
            cpu_0, started = cpu_seconds(process.pid), time.monotonic()
            latencies: list[float] = []
            worst_lag, series, peak_rss = 0.0, 0, 0.0
            while time.monotonic() - started < seconds:
                took, text = scrape(url)
                latencies.append(took)
                series, lag = series_and_lag(text)
                worst_lag = max(worst_lag, lag)
                peak_rss = max(peak_rss, rss_mb(process.pid)[0])
                time.sleep(max(0.0, 1.0 - took))
            cpu_1, elapsed = cpu_seconds(process.pid), time.monotonic() - started
            assert check(text) == series
            errors = [
                json.loads(line)
                for line in Path(tmp, "exporter.log").read_text().splitlines()
                if line.startswith("{") and json.loads(line).get("level") == "error"
            ]
    return {
        "sources": sources,
        "series": series,
        "scrapes": len(latencies),
        "scrape_p50_ms": percentile(latencies, 0.5) * 1000,
        "scrape_p99_ms": percentile(latencies, 0.99) * 1000,
        "rss_mb": peak_rss,
        "cpu_seconds_per_hour": (cpu_1 - cpu_0) * 3600 / elapsed,
        "worst_cycle_lag_s": worst_lag,
        "error_log_lines": len(errors),
    }


if __name__ == "__main__":
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 500
    for key, value in run(count, float(sys.argv[2]) if len(sys.argv) > 2 else 150).items():
        print(f"{key:24s} {value:,.2f}")
