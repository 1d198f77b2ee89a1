"""Helpers shared by the benchmarks: the page-server process, RSS, CPU time."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import yaml

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))


@contextlib.contextmanager
def page_server(sessions: int, spacing: float = 1.0, prerender: bool = False, shape: str = "dify") -> Iterator[str]:
    """Start bench/page_server.py in its own process; yield its base URL; stop it by its PID."""
    args = ["--sessions", str(sessions), "--spacing", str(spacing), "--shape", shape] + (["--prerender"] if prerender else [])
    with child("page_server.py", *args) as first_line:
        yield f"http://127.0.0.1:{int(first_line)}"


@contextlib.contextmanager
def sim_server(rate: float = 2.0, backfill: float = 1800, freeze: bool = False) -> Iterator[str]:
    """Start bench/sim_server.py (the five simulators) in its own process; yield its base URL."""
    args = ["--rate", str(rate), "--backfill", str(backfill)] + (["--freeze"] if freeze else [])
    with child("sim_server.py", *args) as base_url:
        yield base_url


@contextlib.contextmanager
def child(script: str, *args: str) -> Iterator[str]:
    """Run a bench script in its own process, yield the first line it prints, stop it by its PID."""
    process = subprocess.Popen([sys.executable, str(BENCH / script), *args], stdout=subprocess.PIPE, text=True)
    try:
        yield process.stdout.readline().strip()
    finally:
        stop(process)


@contextlib.contextmanager
def exporter_process(
    tmp: Path, config: dict[str, Any], *flags: str, announced: tuple[str, ...] = ("listening",), wait: float = 60.0
) -> Iterator[tuple[subprocess.Popen, dict[str, str]]]:
    """The exporter as its own process on ``config`` (written to ``tmp``/config.yaml), its JSON log in
    ``tmp``/exporter.log; yields it and the URL of each log line ``announced`` (by its message), once
    all are logged (bounded: ``wait`` seconds); stopped by its PID."""
    (tmp / "config.yaml").write_text(yaml.safe_dump(config))
    log_path = tmp / "exporter.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "agent_session_exporter", "--config.file", str(tmp / "config.yaml")]
            + ["--web.listen-address", "127.0.0.1:0", "--log.level", "info", "--log.format", "json", *flags],
            cwd=BENCH.parent,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
        try:
            urls: dict[str, str] = {}
            for _ in range(int(wait * 10)):
                for line in log_path.read_text().splitlines():
                    event = json.loads(line) if line.startswith("{") else {}
                    if event.get("msg") in announced:
                        urls[event["msg"]] = event["url"]
                if len(urls) == len(announced) or process.poll() is not None:
                    break
                time.sleep(0.1)
            if len(urls) != len(announced):
                raise RuntimeError("the exporter did not start: " + log_path.read_text()[-2000:])
            yield process, urls
        finally:
            stop(process)


def stop(process: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL if it has not exited within 10 s."""
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


def rss_mb(pid: int | str = "self") -> tuple[float, float]:
    """(current RSS, peak RSS) in MB from /proc."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def cpu_seconds(pid: int) -> float:
    parts = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")


def chain_shares(provider: str) -> list[float]:
    """A demo source's request chains in one cycle, each as the share of the source's new sessions it
    reads: Kapso's one per workflow; a spec's list, then each of its ``also_read`` lists (n8n's
    running and waiting executions: nothing new in them, still one request each); else the one list."""
    from agent_session_exporter.demo.server import KAPSO_WORKFLOWS
    from agent_session_exporter.read.spec.load import builtin_specs

    if provider == "kapso":
        return [1 / len(KAPSO_WORKFLOWS)] * len(KAPSO_WORKFLOWS)
    spec = builtin_specs().get(provider)
    return [1.0] + [0.0] * (len(spec.also_read) if spec is not None else 0)
