"""The SQLite state store: round trips, restarts without double counting, corruption, removed sources."""

from __future__ import annotations

import sqlite3

import pytest

from agent_session_exporter.app import Exporter
from agent_session_exporter.cli import open_store
from agent_session_exporter.config import Config, parse_config
from agent_session_exporter.count.state import CycleDelta, PendingSession, SourceTotals
from agent_session_exporter.demo.runner import DEMO_SOURCES, demo_config, running_simulators
from agent_session_exporter.demo.server import DEMO_KEYS, HONEYHIVE_PROJECT, PREFIXES, Simulators
from agent_session_exporter.keep.sqlite import SqliteStore
from agent_session_exporter.keep.state_file import StateError

from .helpers import parse_exposition, run, total_of


def demo_config_with_state(base_url: str, tmp_path) -> Config:
    return demo_config(base_url, listen="127.0.0.1:0").model_copy(update={"state_path": str(tmp_path / "state.db")})


def test_round_trip_of_every_part_of_the_state(tmp_path):
    path = str(tmp_path / "state.db")
    store = SqliteStore(path, {"a": "dify"})
    increments = SourceTotals(
        finished={("wf", "failed", "error"): 2},
        duration_buckets={("wf", "error"): [1, 0, 1]},
        duration_sum={("wf", "error"): 7.5},
        warnings={"wf": 3},
        errors={"wf": 2},
        tokens={("wf", "total"): 40},
        cost={("", "m"): 0.25},
        names={"wf": "Support"},
        active_series={("wf", "running"), ("other", "waiting")},
        folded={("active", "workflow"): ["wf-2", "wf-1"], ("finished", "status"): ["odd"]},
    )
    delta = CycleDelta(
        floor=100.0,
        watermark=200.0,
        counted_add={"s1": 150.0, "s2": 190.0},
        pending_upsert={
            "p1": PendingSession(180.0, "running", 181.0),
            "p2": PendingSession(185.0, "running", 186.0, 190.0, 191.0, "wf"),
        },
        increments=increments,
    )
    store.commit("a", delta, increments)
    store.commit(
        "a",
        CycleDelta(floor=100.0, watermark=210.0, counted_remove=["s1"], pending_remove=["p1"], counted_add={"p1": 180.0}),
        increments,
    )
    store.close()
    state = SqliteStore(path, {"a": "dify"}).load("a")
    assert (state.floor, state.watermark) == (100.0, 210.0)
    assert state.counted == {"s2": 190.0, "p1": 180.0}
    assert state.pending == {"p2": PendingSession(185.0, "running", 186.0, 190.0, 191.0, "wf")}
    assert state.totals == increments


def test_a_state_file_of_schema_1_is_upgraded_in_place(tmp_path):
    """Pending rows gain a workflow (""), totals without workflows become workflow "": nothing is lost."""
    path = str(tmp_path / "state.db")
    db = sqlite3.connect(path)
    db.executescript("""
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        INSERT INTO meta VALUES ('schema_version', '1');
        CREATE TABLE sources (name TEXT PRIMARY KEY, provider TEXT NOT NULL, floor REAL, watermark REAL,
                              totals TEXT NOT NULL);
        CREATE TABLE counted (source TEXT NOT NULL, id TEXT NOT NULL, key_time REAL NOT NULL,
                              PRIMARY KEY (source, id)) WITHOUT ROWID;
        CREATE TABLE pending (source TEXT NOT NULL, id TEXT NOT NULL, key_time REAL NOT NULL, status TEXT NOT NULL,
                              first_seen REAL NOT NULL, end_time REAL, end_seen_at REAL,
                              PRIMARY KEY (source, id)) WITHOUT ROWID;
        INSERT INTO sources VALUES ('a', 'dify', 100.0, 200.0, '{"finished":[["failed","error",2]],
            "duration_buckets":{"error":[1,0,1]},"duration_sum":{"error":7.5},"bounds":[1.0,10.0],"warnings":3,
            "errors":2,"tokens":{"total":40},"cost":{}}');
        INSERT INTO counted VALUES ('a', 's1', 150.0);
        INSERT INTO pending VALUES ('a', 'p1', 180.0, 'running', 181.0, NULL, NULL);
    """)
    db.commit()
    db.close()
    store = SqliteStore(path, {"a": "dify"})
    state = store.load("a")
    assert state.pending == {"p1": PendingSession(180.0, "running", 181.0)}
    assert state.counted == {"s1": 150.0}
    assert state.totals.finished == {("", "failed", "error"): 2} and state.totals.errors == {"": 2}
    assert state.totals.duration_buckets == {("", "error"): [1, 0, 1]}
    assert state.totals.active_series == set() and state.totals.folded == {}  # written before the series budget
    store.commit(
        "a",
        CycleDelta(floor=100.0, watermark=210.0, pending_upsert={"p2": PendingSession(190.0, "running", 191.0, workflow="wf")}),
        state.totals,
    )
    store.close()
    assert SqliteStore(path, {"a": "dify"}).load("a").pending["p2"].workflow == "wf"
    assert sqlite3.connect(path).execute("SELECT value FROM meta").fetchone() == ("2",)


def test_removed_or_changed_sources_lose_their_state(tmp_path):
    path = str(tmp_path / "state.db")
    store = SqliteStore(path, {"a": "dify", "b": "kapso", "c": "whatabot"})
    for name in "abc":
        store.commit(name, CycleDelta(floor=1.0, watermark=2.0, counted_add={"x": 2.0}), SourceTotals())
    store.close()
    store = SqliteStore(path, {"a": "dify", "c": "honeyhive"})
    assert sorted(store.retain_only({"a": "dify", "c": "honeyhive"})) == ["b", "c"]
    assert store.row_counts() == {"sources": 1, "counted": 1, "pending": 0}
    assert store.load("a").counted == {"x": 2.0}


def test_a_corrupt_state_file_stops_with_a_message_naming_it(tmp_path):
    path = tmp_path / "state.db"
    path.write_bytes(b"this is not a database at all" * 100)
    with pytest.raises(StateError, match=str(path)):
        SqliteStore(str(path), {})


def test_a_damaged_page_is_detected(tmp_path):
    path = tmp_path / "state.db"
    store = SqliteStore(str(path), {"a": "dify"})
    store.commit("a", CycleDelta(floor=1.0, watermark=2.0, counted_add={f"id-{i}": 2.0 for i in range(5000)}), SourceTotals())
    store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    store.close()
    data = bytearray(path.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 4096] = b"\xff" * 4096
    path.write_bytes(bytes(data))
    with pytest.raises(StateError, match=str(path)):
        store = SqliteStore(str(path), {"a": "dify"})
        store.load("a")


def test_cli_refuses_a_corrupt_state_file_and_reset_state_starts_anew(tmp_path):
    state = tmp_path / "state.db"
    state.write_bytes(b"garbage" * 1000)
    config = tmp_path / "config.yaml"
    config.write_text(
        f"state_path: {state}\nsources:\n  - {{name: s, provider: syntropic137, "
        "base_url: 'http://127.0.0.1:9', timeout: 0.5, retries: 0}\n"
    )
    result = run("--config", str(config), "--once")
    assert result.returncode == 3 and str(state) in result.stderr and "--reset-state" in result.stderr
    result = run("--config", str(config), "--once", "--reset-state")
    assert result.returncode == 1  # the source is unreachable, but the state was recreated
    assert sqlite3.connect(state).execute("SELECT value FROM meta").fetchone() == ("2",)


async def test_restart_on_the_same_state_continues_every_counter(tmp_path, clock):
    simulators = Simulators(clock=clock)
    simulators.backfill(600)
    async with running_simulators(simulators, tick_every=None) as base_url:
        config = demo_config_with_state(base_url, tmp_path)

        async def exporter_cycles(cycles: int) -> dict:
            exporter = Exporter(config, open_store(config), clock=clock)
            await exporter.open()
            try:
                for _ in range(cycles):
                    clock.advance(5)
                    simulators.tick()
                    assert all((await exporter.run_once()).values())
                return parse_exposition(exporter.render_metrics().decode())
            finally:
                await exporter.close()

        first = await exporter_cycles(3)
        restarted = await exporter_cycles(0)
        for key, value in first.items():
            if key[0].startswith("agent_session") and "exporter" not in key[0]:
                assert restarted.get(key) == value, key
        await exporter_cycles(4)
        for factory in simulators.factories.values():
            factory.rate = 0  # nothing new from here on: the truth is final
        simulators.finish_all()
        clock.advance(15)
        final = await exporter_cycles(3)  # HoneyHive: final end times seen, then seen still settle_after later
    for source, provider in DEMO_SOURCES.items():
        factory = simulators.factories[provider]
        assert total_of(final, "agent_sessions_finished_total", source=source) == sum(factory.truth.finished.values()), source
        assert total_of(final, "agent_session_errors_total", source=source) == factory.truth.errors


async def test_a_honeyhive_source_switching_between_its_apis_keeps_its_state(tmp_path, clock):
    """sessions -> events -> search -> sessions on one state file, restarted at each switch: the three
    APIs name a session alike (its ``session_id``), so a session pending under one API is counted under
    the next, and none twice: at the end every counter equals what the simulator finished."""
    simulators = Simulators(clock=clock, rate=0.5, retention=None)
    simulators.backfill(600)
    factory = simulators.factories["honeyhive"]
    async with running_simulators(simulators, tick_every=None) as base_url:

        def config(api: str) -> Config:
            return parse_config(
                {
                    "state_path": str(tmp_path / "state.db"),
                    "sources": [
                        {
                            "name": "hh",
                            "provider": "honeyhive",
                            "base_url": base_url + PREFIXES["honeyhive"],
                            "api_key": DEMO_KEYS["honeyhive"],
                            "project": HONEYHIVE_PROJECT,
                            "api": api,
                            "settle_after": "10s",
                            "initial_lookback": "1h",
                        }
                    ],
                },
                {},
            )

        async def cycles(api: str, count: int) -> tuple[dict, set[str], set[str]]:
            """``count`` cycles 5 s apart on ``api``: the exposition, the ids pending before and after."""
            exporter = Exporter(config(api), open_store(config(api)), clock=clock)
            await exporter.open()
            try:
                pending_before = set(exporter.pollers["hh"].state.pending)
                for _ in range(count):
                    clock.advance(5)
                    simulators.tick()
                    assert all((await exporter.run_once()).values()), api
                return (
                    parse_exposition(exporter.render_metrics().decode()),
                    pending_before,
                    set(exporter.pollers["hh"].state.pending),
                )
            finally:
                await exporter.close()

        counted = 0.0
        pending: set[str] = set()
        for api in ("sessions", "events", "search", "sessions", "search"):
            samples, carried, pending = await cycles(api, 4)
            assert bool(carried) == bool(counted), api  # a fresh start, or sessions pending carried over
            # What was pending under the previous API and has ended since was counted under this one
            # (none dropped: the counter below stays 0, and the end's totals are exact).
            assert not carried or carried - pending, api
            assert total_of(samples, "agent_session_exporter_pending_dropped_total", source="hh") == 0, api
            now_counted = total_of(samples, "agent_sessions_finished_total", source="hh")
            assert now_counted > counted, api  # carried over, then more
            counted = now_counted
        assert pending
        for each in simulators.factories.values():
            each.rate = 0
        simulators.finish_all()
        final, _, left = await cycles("events", 4)
    truth = factory.truth
    assert total_of(final, "agent_sessions_finished_total", source="hh") == sum(truth.finished.values())
    for (status, outcome), count in truth.finished.items():
        assert total_of(final, "agent_sessions_finished_total", source="hh", status=status, outcome=outcome) == count
    assert total_of(final, "agent_session_errors_total", source="hh") == truth.errors
    assert total_of(final, "agent_session_tokens_total", source="hh", token_type="input") == truth.tokens["input"]
    assert not left and total_of(final, "agent_sessions_active", source="hh") == 0


async def test_changed_duration_buckets_restart_only_the_histogram(tmp_path, clock):
    simulators = Simulators(clock=clock)
    simulators.backfill(600)
    async with running_simulators(simulators, tick_every=None) as base_url:
        config = demo_config_with_state(base_url, tmp_path)
        exporter = Exporter(config, open_store(config), clock=clock)
        await exporter.open()
        await exporter.run_once()
        before = parse_exposition(exporter.render_metrics().decode())
        await exporter.close()
        rebucketed = config.model_copy(update={"duration_buckets": (2.0, 20.0)})
        exporter = Exporter(rebucketed, open_store(rebucketed), clock=clock)
        await exporter.open()
        after = parse_exposition(exporter.render_metrics().decode())
        await exporter.close()
    assert total_of(after, "agent_sessions_finished_total") == total_of(before, "agent_sessions_finished_total") > 0
    assert total_of(before, "agent_session_duration_seconds_count") > 0
    assert total_of(after, "agent_session_duration_seconds_count") == 0
    assert not any(n == "agent_session_duration_seconds_bucket" and dict(ls)["le"] == "1.0" for n, ls in after)
