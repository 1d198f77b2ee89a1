"""kill -9 at any instant: the exporter restarts on its state file and counts every session exactly once."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import sys
import time
from pathlib import Path

import aiohttp
import yaml

from agent_session_exporter.demo.runner import DEMO_SOURCES, demo_config, running_simulators
from agent_session_exporter.demo.server import Simulators

from .helpers import parse_exposition, scrape_after_more_cycles, source_entry, total_of

ROOT = Path(__file__).resolve().parent.parent


async def start_exporter(config_path: Path, log_path: Path) -> tuple[asyncio.subprocess.Process, str]:
    log = open(log_path, "a")
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "agent_session_exporter",
        "--config",
        str(config_path),
        "--listen",
        "127.0.0.1:0",
        cwd=ROOT,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=log,
    )
    log.close()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        lines = [json.loads(line) for line in log_path.read_text().splitlines()]
        urls = [e["url"] for e in lines if e.get("msg") == "listening" and e.get("pid") == process.pid]
        if urls:
            return process, urls[-1]
        await asyncio.sleep(0.05)
    process.kill()
    await process.wait()
    raise AssertionError("exporter did not start listening")


async def test_sigkill_while_sessions_arrive_never_loses_or_double_counts(tmp_path):
    rnd = random.Random(1234)
    simulators = Simulators(rate=4.0, min_duration=0.2, max_duration=2.5)
    async with running_simulators(simulators, tick_every=0.05) as base_url:
        config = demo_config(base_url)
        raw = {"state_path": str(tmp_path / "state.db"), "interval": 1, "sources": []}
        for source in config.sources:
            raw["sources"].append(
                {**source_entry(source), "initial_lookback": "1h", "overlap": "30s", "settle_after": 0.5, "timeout": 5}
            )
        config_path = tmp_path / "config.yaml"
        config_path.write_text(yaml.safe_dump(raw))
        log_path = tmp_path / "exporter.log"

        for _ in range(4):
            process, _ = await start_exporter(config_path, log_path)
            await asyncio.sleep(rnd.uniform(0.6, 1.8))
            process.send_signal(signal.SIGKILL)
            assert await asyncio.wait_for(process.wait(), 10) == -signal.SIGKILL

        for factory in simulators.factories.values():
            factory.rate = 0
        simulators.finish_all()
        truth = {source: sum(simulators.factories[p].truth.finished.values()) for source, p in DEMO_SOURCES.items()}
        process, url = await start_exporter(config_path, log_path)
        try:
            samples: dict = {}
            async with aiohttp.ClientSession() as client:
                for _ in range(100):  # bounded: ~20 s
                    async with client.get(url) as response:
                        samples = parse_exposition(await response.text())
                    if all(total_of(samples, "agent_sessions_finished_total", source=source) >= n for source, n in truth.items()):
                        break
                    await asyncio.sleep(0.2)
                # Two more cycles of every source: nothing may be counted twice.
                samples = await scrape_after_more_cycles(client, url, samples)
        finally:
            process.send_signal(signal.SIGTERM)
            code = await asyncio.wait_for(process.wait(), 10)
    assert code == 0
    for source, provider in DEMO_SOURCES.items():
        factory = simulators.factories[provider]
        assert sum(factory.truth.finished.values()) > 20, provider
        for (status, outcome), count in factory.truth.finished.items():
            assert total_of(samples, "agent_sessions_finished_total", source=source, status=status, outcome=outcome) == count, (
                source,
                status,
                outcome,
            )
        assert total_of(samples, "agent_session_errors_total", source=source) == factory.truth.errors
        assert total_of(samples, "agent_session_warnings_total", source=source) == factory.truth.warnings
        for kind, value in factory.truth.tokens.items():
            assert total_of(samples, "agent_session_tokens_total", source=source, token_type=kind) == value
        assert total_of(samples, "agent_sessions_active", source=source) == 0
    assert os.path.exists(tmp_path / "state.db")
