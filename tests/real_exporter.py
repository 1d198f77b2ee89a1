"""The exporter as users run it (``python -m agent_session_exporter --config.file ...``), a process of
its own on a loopback port, for the real-server tests: started, scraped, killed by its PID."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .helpers import parse_exposition, total_of
from .real_n8n import free_port

ROOT = Path(__file__).resolve().parent.parent
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@dataclass
class ExporterProcess:
    """One exporter on ``127.0.0.1:port`` with ``config_path``; every start on the same port and log."""

    config_path: Path
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    #: Every start's seconds until /metrics answered.
    starts: list[float] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/metrics"

    def start(self, timeout: float = 30) -> None:
        assert self.process is None, "already started"
        began = time.monotonic()
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "agent_session_exporter",
                    "--config.file",
                    str(self.config_path),
                    "--web.listen-address",
                    f"127.0.0.1:{self.port}",
                ],
                cwd=ROOT,
                env={**os.environ, **self.env},
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )
        self.wait_for(lambda: self.scrape() is not None, timeout, "the exporter to serve /metrics")
        self.starts.append(time.monotonic() - began)

    def stop(self, sig: signal.Signals = signal.SIGTERM, timeout: float = 20) -> int:
        """Send ``sig`` to the exporter's PID and wait for it (SIGKILL after ``timeout``); its exit code."""
        process, self.process = self.process, None
        assert process is not None, "not started"
        process.send_signal(sig)
        try:
            return process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
            raise AssertionError(f"the exporter did not stop on {sig.name}; its log:\n{self.log_tail()}") from None

    def close(self) -> None:
        """Kill the exporter by its PID if it runs (a test's clean-up, whatever happened)."""
        if self.process is not None and self.process.poll() is None:
            self.stop(signal.SIGKILL)
        self.process = None

    def scrape(self) -> Samples | None:
        """The samples on /metrics, or None while nothing answers."""
        try:
            with urllib.request.urlopen(self.url, timeout=5) as response:
                return parse_exposition(response.read().decode())
        except (OSError, urllib.error.URLError):
            return None

    def log_tail(self, chars: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else ""

    def wait_for(self, check: Callable[[], bool], timeout: float, what: str) -> None:
        """Poll ``check`` (bounded) until true; fail with the exporter's log if it does not come or it died."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if check():
                return
            if self.process is None or self.process.poll() is not None:
                raise AssertionError(f"the exporter is not running while waiting for {what}; its log:\n" + self.log_tail())
            time.sleep(0.2)
        raise AssertionError(f"no {what} within {timeout:.0f} s; the exporter's log:\n{self.log_tail()}")

    def wait_for_samples(self, check: Callable[[Samples], bool], timeout: float, what: str) -> Samples:
        """Scrape until ``check`` holds of the samples; the samples it held of."""
        latest: list[Samples] = []

        def holds() -> bool:
            samples = self.scrape()
            if samples is None:
                return False
            latest[:] = [samples]
            return check(samples)

        try:
            self.wait_for(holds, timeout, what)
        except AssertionError as error:
            raise AssertionError(f"{error}\nlast scrape: {summary(latest[0]) if latest else None}") from None
        return latest[0]

    def cycles(self, samples: Samples) -> float:
        return total_of(samples, "agent_session_exporter_collect_duration_seconds_count")

    def after_more_cycles(self, samples: Samples, cycles: int = 2, timeout: float = 30) -> Samples:
        """The samples once ``cycles`` more collection cycles ran: a check after it knows they did."""
        target = self.cycles(samples) + cycles
        return self.wait_for_samples(lambda s: self.cycles(s) >= target, timeout, f"{cycles} more cycles")


def summary(samples: Samples, prefix: str = "agent_session") -> dict[str, Any]:
    """The samples of the session families (and the exporter's own), readable in a failure message."""
    return {
        name + "{" + ",".join(f"{k}={v}" for k, v in sorted(labels)) + "}": value
        for (name, labels), value in sorted(samples.items(), key=lambda i: i[0][0])
        if name.startswith(prefix) and not name.endswith("_bucket")
    }
