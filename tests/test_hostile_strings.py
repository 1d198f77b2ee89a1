"""A corpus of hostile strings through every string field of every provider, end to end (issue rows
1, 2 and 15): the simulators serve them, the exporter counts, restarts on its state file and counts
on; every scrape, in both formats, is accepted by promtool and prometheus_client's parsers, and
every source counts exactly the sessions whose ids can be kept."""

from __future__ import annotations

import hashlib
import zlib
from typing import Any

import aiohttp
from aiohttp import web

from agent_session_exporter.app import Exporter
from agent_session_exporter.cli import open_store
from agent_session_exporter.config import Config
from agent_session_exporter.demo.runner import DEMO_SOURCES, demo_config, running_simulators
from agent_session_exporter.demo.server import Simulators
from agent_session_exporter.serve.server import make_app

from .helpers import check_exposition, total_of

CORPUS = [
    "\r# HELP agent_sessions_finished_total x\r# TYPE x counter\rx 1",  # a header after a \r
    "\n# EOF\n",
    "lone\ud800",  # a lone surrogate, sent as the JSON escape \ud800
    "\udfff",
    "nul\x00byte",
    "c1\x85\x9c\x9f",
    "del\x7f\ttab",
    "x" * 10_240,
    'quo"te',
    "back\\slash\\",
    '\\"}# {',
    "emoji \U0001f600 \u2028",
]
#: Where a provider's items hold their ids (decoded as ids, never cleaned; see ``hostile_id``).
ID_KEYS = {
    "whatabot": {"id"},
    "dify": {"id"},
    "syntropic137": {"id"},
    "honeyhive": {"session_id", "event_id", "parent_id"},
    "kapso": {"id"},
    "n8n": {"id"},
}
#: Fields left alone: times and figures (a hostile one makes an item invalid, not a label unsafe),
#: and what tells a HoneyHive session from its child events.
KEPT = {
    "startedAt",
    "finishedAt",
    "expiresAt",
    "created_at",
    "finished_at",
    "started_at",
    "completed_at",
    "ended_at",
    "last_event_at",
    "start_time",
    "end_time",
    "total_cost_usd",
    "event_type",
    "stoppedAt",
    "waitTill",
    "createdAt",
}
ID_MODES = 6
REFUSED_MODES = {3, 4}


def mode_of(session_id: str) -> int:
    return zlib.crc32(session_id.encode()) % ID_MODES


def hostile_id(value: Any) -> Any:
    """The same session's id the same way in every answer: kept, past 2^64, with control characters,
    quotes and backslashes (all kept as they are), or not valid UTF-8, or too long (both refused)."""
    if not isinstance(value, str):
        return value
    mode = mode_of(value)
    if mode == 1:
        return 2**64 + int.from_bytes(hashlib.sha256(value.encode()).digest()[:12], "big")
    return {0: value, 2: value + "\r# x\n", 3: value + "\ud800", 4: value + "x" * 300, 5: value + '"\\'}[mode]


def mutate(value: Any, provider: str, seed: int, depth: int = 0) -> Any:
    """Every string field of an item, made hostile (each session's from its own place in the corpus)."""
    if isinstance(value, list):
        return [mutate(v, provider, seed, depth) for v in value]
    if not isinstance(value, dict):
        return value
    out: dict[str, Any] = {}
    for position, (key, field) in enumerate(value.items()):
        if key in ID_KEYS[provider] and depth <= 1:
            out[key] = hostile_id(field)
        elif isinstance(field, str) and key not in KEPT and seed % 2 == 0:
            out[key] = field + CORPUS[(seed + position) % len(CORPUS)]
        else:
            out[key] = mutate(field, provider, seed, depth + 1)
    return out


def item_seed(item: dict[str, Any]) -> int:
    run = item.get("workflow_run")
    sid = run.get("id") if isinstance(run, dict) else item.get("session_id") or item.get("id")
    return zlib.crc32(str(sid).encode())


def install(simulators: Simulators) -> None:
    def items_of(provider: str, key: str | None):
        def mutator(payload: Any) -> Any:
            items = payload if key is None else payload.get(key) if isinstance(payload, dict) else None
            if not isinstance(items, list):
                return payload
            if provider == "kapso" and items and "started_at" not in items[0]:  # GET /workflows
                hostile = [{"id": "wf\ud800", "name": "lone"}, {"id": "w" * 10_240, "name": "long"}]
                return {**payload, "data": [{**w, "name": w["name"] + CORPUS[n]} for n, w in enumerate(items)] + hostile}
            mutated = [mutate(item, provider, item_seed(item)) if isinstance(item, dict) else item for item in items]
            return mutated if key is None else {**payload, key: mutated}

        return mutator

    simulators.mutators.update(
        whatabot=items_of("whatabot", "content"),
        dify=items_of("dify", "data"),
        syntropic137=items_of("syntropic137", "sessions"),
        kapso=items_of("kapso", "data"),
        n8n=items_of("n8n", "data"),
    )
    events, sessions = items_of("honeyhive", "events"), items_of("honeyhive", None)
    simulators.mutators["honeyhive"] = lambda payload: events(payload) if isinstance(payload, dict) else sessions(payload)


def expected(simulators: Simulators) -> dict[str, int]:
    """Per source, the finished sessions whose ids can be kept."""
    return {
        source: sum(
            1
            for s in simulators.factories[provider].sessions.values()
            if s.ended_at is not None and mode_of(s.id) not in REFUSED_MODES
        )
        for source, provider in DEMO_SOURCES.items()
    }


def refused(simulators: Simulators, mode: int) -> dict[str, int]:
    return {
        source: sum(1 for s in simulators.factories[provider].sessions.values() if mode_of(s.id) == mode)
        for source, provider in DEMO_SOURCES.items()
    }


async def scrape(exporter: Exporter) -> dict[bool, dict[Any, float]]:
    """/metrics over HTTP in both formats (each checked by promtool or its parser), and ``/``."""
    runner = web.AppRunner(make_app(exporter), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = "http://{}:{}".format(*runner.addresses[0][:2])
    samples: dict[bool, dict[Any, float]] = {}
    try:
        async with aiohttp.ClientSession() as client:
            for openmetrics in (False, True):
                accept = "application/openmetrics-text; version=1.0.0" if openmetrics else "text/plain"
                async with client.get(url + "/metrics", headers={"Accept": accept}) as response:
                    assert response.status == 200
                    families = check_exposition(await response.read(), openmetrics)
                samples[openmetrics] = {
                    (
                        s.name.removesuffix("_total") + "_total" if f.type == "counter" else s.name,
                        frozenset(s.labels.items()),
                    ): s.value
                    for f in families
                    for s in f.samples
                    if not s.name.endswith("_created")
                }
            async with client.get(url + "/") as response:
                assert response.status == 200 and "\ud800" not in await response.text()
    finally:
        await runner.cleanup()
    return samples


def counted(samples: dict[Any, float]) -> dict[str, float]:
    return {source: total_of(samples, "agent_sessions_finished_total", source=source) for source in DEMO_SOURCES}


async def cycles(exporter: Exporter, clock: Any, n: int = 2) -> None:
    for _ in range(n):
        clock.advance(5)
        assert all((await exporter.run_once()).values())


async def test_hostile_strings_in_every_field_of_every_provider_never_break_a_scrape_or_a_count(tmp_path, clock):
    simulators = Simulators(clock=clock)
    simulators.backfill(600)
    simulators.finish_all()
    install(simulators)
    async with running_simulators(simulators, tick_every=None) as base_url:
        config = demo_config(base_url, listen="127.0.0.1:0")
        config = Config.model_validate(
            {
                **config.model_dump(),
                "state_path": str(tmp_path / "state.db"),
                "sources": [{**s.model_dump(), "settle_after": 0} for s in config.sources],
            }
        )
        exporter = Exporter(config, open_store(config), clock=clock)
        await exporter.open()
        try:
            await cycles(exporter, clock)
            first = await scrape(exporter)
        finally:
            await exporter.close()
        truth = expected(simulators)
        assert all(n > 50 for n in truth.values()), truth
        for samples in first.values():
            assert counted(samples) == truth
        for reason, mode in (("id_not_utf8", 3), ("id_too_long", 4)):
            assert {
                source: total_of(first[False], "agent_session_exporter_invalid_records_total", source=source, reason=reason)
                for source in DEMO_SOURCES
            } == refused(simulators, mode), reason
        for source in DEMO_SOURCES:
            assert total_of(first[False], "agent_session_exporter_sanitized_values_total", source=source) > 0, source

        # Restarted on its state file: the same counts, rendered from what was loaded.
        exporter = Exporter(config, open_store(config), clock=clock)
        await exporter.open()
        try:
            restarted = await scrape(exporter)
            for samples in restarted.values():
                assert counted(samples) == truth
            # And it counts on: new sessions, each once.
            clock.advance(20)
            for factory in simulators.factories.values():
                for n in range(12):
                    factory.start_session(started_at=clock.now - 5 + n * 0.1, duration=2)
            simulators.finish_all()
            await cycles(exporter, clock)
            final = await scrape(exporter)
        finally:
            await exporter.close()
    truth = expected(simulators)
    for samples in final.values():
        assert counted(samples) == truth
        assert total_of(samples, "agent_session_exporter_source_up") == len(DEMO_SOURCES)
