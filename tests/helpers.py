"""Builders shared by the tests: sources, pollers, and metric readers."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import aiohttp
from aioresponses import CallbackResult
from prometheus_client import CollectorRegistry
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families

from agent_session_exporter.app import build_poller
from agent_session_exporter.config import DEFAULT_BUCKETS, SourceConfig, parse_config
from agent_session_exporter.keep.store import MemoryStore, Store
from agent_session_exporter.serve.selfmetrics import SelfMetrics

ROOT = Path(__file__).resolve().parent.parent
BASE = "http://api.test"
KEY = "sk-test-0123456789"


def make_source(provider: str, **overrides: Any) -> SourceConfig:
    entry: dict[str, Any] = {"name": f"{provider}-src", "provider": provider, "base_url": BASE}
    if provider != "syntropic137":
        entry["api_key"] = KEY
    if provider == "honeyhive":
        entry["project"] = "proj"
    if provider == "kapso":
        entry["workflow_ids"] = ["wf-a"]
    entry.update(overrides)
    return parse_config({"sources": [entry]}, {}).sources[0]


class Harness:
    """One source's poller wired to a real aiohttp session and a private registry."""

    def __init__(
        self,
        source: SourceConfig,
        session: aiohttp.ClientSession,
        clock: Callable[[], float],
        store: Store | None = None,
        sleep: Callable[[float], Any] | None = None,
    ) -> None:
        """``sleep``: what the HTTP client's waits (retry backoff, Retry-After) do; by default nothing."""
        self.source = source
        self.registry = CollectorRegistry(auto_describe=False)
        self.self_metrics = SelfMetrics(self.registry)
        self.poller = build_poller(
            source, session, store or MemoryStore(), self.self_metrics, DEFAULT_BUCKETS, clock=clock, sleep=sleep or _no_sleep
        )
        self.provider = self.poller.provider
        self.http = self.provider.http
        self.registry.register(self.self_metrics.all_sources)
        self.registry.register(self.poller.session_metrics)

    def value(self, name: str, **labels: str) -> float:
        """Sum of ``name`` over this source's series matching ``labels`` (every workflow, unless given)."""
        return sum_samples(self.registry, name, source=self.source.name, provider=self.source.provider, **labels)

    def finished(self, **labels: str) -> float:
        """Sum of agent_sessions_finished_total over the series matching ``labels``."""
        return sum_samples(self.registry, "agent_sessions_finished_total", source=self.source.name, **labels)


async def _no_sleep(seconds: float) -> None:
    return None


def sum_samples(registry: CollectorRegistry, name: str, **labels: str) -> float:
    total = 0.0
    for family in registry.collect():
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


def tool(name: str) -> str:
    path = shutil.which(name)
    assert path, f"{name} not found: install Debian's 'prometheus' package (.ci/run does)"
    return path


def check_exposition(body: bytes, openmetrics: bool) -> list[Any]:
    """Every family of an exposition, asserting that what Prometheus and prometheus_client parse
    accepts it: promtool (which reads the text format) and the parser of its format."""
    text = body.decode()
    if openmetrics:
        assert text.endswith("\n# EOF\n")
        return list(parse_openmetrics(text))
    result = subprocess.run([tool("promtool"), "check", "metrics"], input=body, capture_output=True, timeout=60)
    assert result.returncode == 0, result.stderr.decode(errors="replace")[-2000:]
    return list(text_string_to_metric_families(text))


def parse_exposition(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def total_of(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    return sum(v for (n, ls), v in samples.items() if n == name and labels.items() <= dict(ls).items())


class Upstream:
    """An aioresponses callback that serves pages from a function and records each request."""

    def __init__(self, serve: Callable[[str, dict[str, str]], Any], status: int = 200) -> None:
        self.serve = serve
        self.calls: list[tuple[str, dict[str, str], dict[str, str]]] = []
        #: The decoded JSON body of each POST, in order.
        self.bodies: list[Any] = []
        #: Each request's path as sent on the wire (percent-encoding kept).
        self.raw_paths: list[str] = []
        self.status = status
        self.paths: Counter[str] = Counter()

    def __call__(self, url: Any, **kwargs: Any) -> CallbackResult:
        params = dict(url.query)
        headers = dict(kwargs.get("headers") or {})
        if kwargs.get("data") is not None:
            self.bodies.append(json.loads(kwargs["data"]))
            params = {**params, **{k: v for k, v in self.bodies[-1].items() if isinstance(v, (int, str))}}
        self.calls.append((url.path, params, headers))
        self.raw_paths.append(url.raw_path)
        self.paths[url.path] += 1
        answer = self.serve(url.path, params)
        return answer if isinstance(answer, CallbackResult) else CallbackResult(status=self.status, payload=answer)

    @staticmethod
    def pattern() -> re.Pattern[str]:
        return re.compile(r"^http://api\.test/.*$")


def run(*args: str, timeout: float = 60, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The exporter's command line, run as users run it: a subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "agent_session_exporter", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def iso_ms(ts: float) -> str:
    """ISO 8601 UTC with milliseconds and Z, as Whatabot and Kapso write times."""
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def spring_page(items: list[dict[str, Any]], page: int, size: int, total: int) -> dict[str, Any]:
    """A Whatabot (Spring Data) page object."""
    pages = (total + size - 1) // size
    return {
        "content": items,
        "totalElements": total,
        "totalPages": pages,
        "size": size,
        "number": page,
        "first": page == 0,
        "last": page >= pages - 1,
        "empty": not items,
    }


def whatabot_item(
    n: int, status: str = "completed", started: float = 1_780_000_000.0 - 100, length: float = 135.0, warnings: int = 0
) -> dict[str, Any]:
    """A Whatabot session log item shaped like its documentation."""
    return {
        "id": f"a1b2c3d4-0000-0000-0000-{n:012d}",
        "workspaceId": "660e8400-e29b-41d4-a716-446655440000",
        "flowId": "550e8400-e29b-41d4-a716-446655440000",
        "externalId": "contact-123",
        "status": status,
        "warnings": warnings,
        "startedAt": iso_ms(started),
        "expiresAt": iso_ms(started + 900),
        "finishedAt": None if status in ("running", "active") else iso_ms(started + length),
    }


def source_entry(source: SourceConfig) -> dict[str, Any]:
    """A configured source back as its config-file entry (what differs from the defaults)."""
    return source.model_dump(mode="json", exclude_defaults=True, exclude={"interval"})


class FakeClock:
    """A clock the tests move by hand; shared by simulators and exporter."""

    def __init__(self, start: float = 1_780_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


async def scrape_after_more_cycles(
    client: Any, url: str, samples: dict[Any, float], cycles: int = 2, attempts: int = 150
) -> dict[Any, float]:
    """Scrape until every source has completed ``cycles`` more collection cycles than in ``samples``
    (bounded: ``attempts`` scrapes 0.1 s apart), so a check after it knows cycles really ran."""

    def counts(snapshot: dict[Any, float]) -> dict[str, float]:
        return {
            dict(labels)["source"]: value
            for (name, labels), value in snapshot.items()
            if name == "agent_session_exporter_collect_duration_seconds_count"
        }

    before = counts(samples)
    for _ in range(attempts):
        async with client.get(url) as response:
            latest = parse_exposition(await response.text())
        now = counts(latest)
        if before and all(now.get(source, 0) >= count + cycles for source, count in before.items()):
            return latest
        await asyncio.sleep(0.1)
    raise AssertionError(f"sources did not complete {cycles} more cycles: {before} -> {now}")
