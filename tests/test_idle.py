"""A cycle that changed nothing does no work beyond its request (issue #33): it commits nothing and
renders nothing; the next scrape renders what changed, and the counts stay exact."""

from __future__ import annotations

import os

from agent_session_exporter.app import Exporter
from agent_session_exporter.config import parse_config
from agent_session_exporter.demo.runner import demo_config, running_simulators
from agent_session_exporter.demo.server import Simulators
from agent_session_exporter.keep.sqlite import SqliteStore
from agent_session_exporter.serve import exposition as exposition_module

from .helpers import parse_exposition, source_entry, total_of


class CountingStore(SqliteStore):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.commits = 0

    def commit(self, source, delta, totals) -> None:
        self.commits += 1
        super().commit(source, delta, totals)


async def test_an_idle_cycle_commits_nothing_and_renders_nothing(tmp_path, clock, monkeypatch):
    renders = []
    real = exposition_module.render_families
    monkeypatch.setattr(
        exposition_module,
        "render_families",
        lambda collector, openmetrics: renders.append(openmetrics) or real(collector, openmetrics),
    )
    simulators = Simulators(clock=clock, rate=0.5)
    simulators.backfill(600)
    simulators.finish_all()
    for factory in simulators.factories.values():
        factory.rate = 0  # nothing new from here on
    path = str(tmp_path / "state.db")
    async with running_simulators(simulators, tick_every=None) as base_url:
        config = demo_config(base_url, listen="127.0.0.1:0")
        config = parse_config({"state_path": path, "sources": [source_entry(s) for s in config.sources]}, {})
        store = CountingStore(path, {s.name: s.provider for s in config.sources})
        exporter = Exporter(config, store, clock=clock)
        await exporter.open()
        try:
            for _ in range(3):  # the backlog, then settling sessions seen again settle_after later
                clock.advance(15)
                assert all((await exporter.run_once()).values())
            before = parse_exposition(exporter.render_metrics().decode())
            commits, rendered = store.commits, len(renders)
            for _ in range(4):
                clock.advance(15)
                assert all((await exporter.run_once()).values())
            assert store.commits == commits and len(renders) == rendered  # nothing written, nothing rendered
            os.remove(path)  # a state file deleted under an idle exporter is still recreated at once
            clock.advance(15)
            assert all((await exporter.run_once()).values())
            assert os.path.exists(path) and store.commits == commits
            after = parse_exposition(exporter.render_metrics().decode())
            assert len(renders) == rendered + len(config.sources)  # each source's self-metrics, once
        finally:
            await exporter.close()
    assert total_of(after, "agent_sessions_finished_total") == total_of(before, "agent_sessions_finished_total") > 0
    assert total_of(after, "agent_session_exporter_state_recreated_total") == 1
    cycles = "agent_session_exporter_collect_duration_seconds_count"
    assert total_of(after, cycles) == total_of(before, cycles) + 5 * len(config.sources)
