"""Smoke test: every benchmark runs at tiny size and prints its table (no timing is asserted)."""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_benchmark_suite_runs_at_smoke_size():
    result = subprocess.run([sys.executable, "bench/run.py", "--smoke"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    for figure in (
        "1. ingest",
        "2. scrape",
        "3. memory",
        "4. idle",
        "5. state",
        "scale: sources",
        "scale: series",
        "scale: /metrics p99 ms",
        "scale: RSS MB",
        "scale: CPU s/hour",
        "scale: worst cycle lag s",
    ):
        assert any(re.match(rf"\| {re.escape(figure)}[ :]", line) for line in lines), figure
    assert all(line.count("|") == 5 for line in lines[1:])


def test_only_runs_the_named_benchmarks():
    result = subprocess.run(
        [sys.executable, "bench/run.py", "--smoke", "--only", "state"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    figures = [line.split("|")[1] for line in result.stdout.splitlines() if line.startswith("| ")][1:]
    assert figures[0].strip().startswith("5. state") and all(f.startswith("    ") for f in figures[1:]), figures
    refused = subprocess.run(
        [sys.executable, "bench/run.py", "--only", "nope"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert refused.returncode == 2 and "unknown benchmark 'nope'" in refused.stderr
