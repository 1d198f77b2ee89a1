"""The state file under hostile conditions (issue #10, defects 14-16): locked, refused with exit 3
and a message naming it, and recreated from memory when deleted under a running exporter."""

from __future__ import annotations

import os
import sqlite3

import pytest
from prometheus_client import generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics

from agent_session_exporter.app import Exporter
from agent_session_exporter.config import DEFAULT_BUCKETS, parse_config
from agent_session_exporter.count.state import CycleDelta, SourceTotals
from agent_session_exporter.demo.runner import demo_config, running_simulators
from agent_session_exporter.demo.server import Simulators
from agent_session_exporter.keep.codec import totals_to_json
from agent_session_exporter.keep.sqlite import SqliteStore
from agent_session_exporter.keep.state_file import StateError

from .helpers import Harness, check_exposition, make_source, parse_exposition, run, source_entry


def config_file(tmp_path, state_path) -> str:
    path = tmp_path / "config.yaml"
    path.write_text(
        f"state_path: {state_path}\nsources:\n  - {{name: s, provider: syntropic137, "
        "base_url: 'http://127.0.0.1:9', timeout: 0.5, retries: 0}\n"
    )
    return str(path)


# 14 ------------------------------------------------------------------------------------------


def test_a_second_process_on_the_same_state_file_is_refused(tmp_path):
    path = str(tmp_path / "state.db")
    first = SqliteStore(path, {"s": "syntropic137"})
    try:
        with pytest.raises(StateError, match="in use by another exporter process"):
            SqliteStore(path, {"other": "dify"})
        result = run("--config", config_file(tmp_path, path), "--once")
        assert result.returncode == 3 and path in result.stderr and f"pid {os.getpid()}" in result.stderr
        result = run("--config", config_file(tmp_path, path), "--once", "--reset-state")
        assert result.returncode == 3 and os.path.exists(path)  # --reset-state respects the lock too
    finally:
        first.close()
    second = SqliteStore(path, {"s": "syntropic137"})  # free again once the first closed
    second.close()


# 15 ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "corrupt",
    [
        "UPDATE sources SET totals='{not json'",
        "UPDATE sources SET watermark='yesterday'",
        "UPDATE counted SET key_time='soon'",
        "UPDATE pending SET first_seen=NULL",
    ],
)
def test_a_corrupt_row_exits_3_naming_the_file(tmp_path, corrupt):
    path = str(tmp_path / "state.db")
    store = SqliteStore(path, {"s": "syntropic137"})
    store.commit("s", CycleDelta(floor=1.0, watermark=2.0, counted_add={"x": 2.0}), SourceTotals())
    store.db.execute("INSERT INTO pending VALUES ('s', 'p', 1.0, 'running', 1.0, NULL, NULL, '')")
    store.db.execute("PRAGMA ignore_check_constraints=ON")
    store.db.execute(corrupt.replace("first_seen=NULL", "first_seen='x'"))
    store.close()
    result = run("--config", config_file(tmp_path, path), "--once")
    assert result.returncode == 3, result.stderr[-1000:]
    assert path in result.stderr and "Traceback" not in result.stderr


def test_unusable_state_paths_exit_3_naming_the_path(tmp_path):
    """A path whose directory is missing is a config error (exit 2, before anything starts); one the
    store cannot open (here: a directory) is a state error (exit 3) that names the path."""
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    missing_dir = str(blocker / "sub" / "state.db")
    unopenable = tmp_path / "a-directory"
    unopenable.mkdir()
    for args in (("--once",), ("--once", "--reset-state")):
        result = run("--config", config_file(tmp_path, missing_dir), *args)
        assert result.returncode == 2 and "state_path: its directory does not exist" in result.stderr
        result = run("--config", config_file(tmp_path, str(unopenable)), *args)
        assert result.returncode == 3 and str(unopenable) in result.stderr and "Traceback" not in result.stderr


def test_an_empty_state_file_is_said_to_start_anew(tmp_path):
    path = tmp_path / "state.db"
    path.write_bytes(b"")
    result = run("--config", config_file(tmp_path, str(path)), "--once")
    assert "the state file is empty: starting a new state" in result.stderr
    assert sqlite3.connect(path).execute("SELECT value FROM meta").fetchone() == ("2",)


# 16 ------------------------------------------------------------------------------------------


async def test_a_state_file_deleted_while_running_is_recreated_from_memory(tmp_path, clock, logs):
    simulators = Simulators(clock=clock, rate=1.0)
    simulators.backfill(300)
    path = str(tmp_path / "state.db")
    async with running_simulators(simulators, tick_every=None) as base_url:
        config = demo_config(base_url, listen="127.0.0.1:0")
        config = parse_config(
            {"state_path": path, "sources": [source_entry(s) for s in config.sources if s.provider in ("dify", "kapso")]}, {}
        )
        exporter = Exporter(config, SqliteStore(path, {s.name: s.provider for s in config.sources}), clock=clock)
        await exporter.open()
        for _ in range(3):
            clock.advance(5)
            simulators.tick()
            assert all((await exporter.run_once()).values())
        before = parse_exposition(exporter.render_metrics().decode())
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(path + suffix):
                os.remove(path + suffix)
        clock.advance(5)
        simulators.tick()
        assert all((await exporter.run_once()).values())
        during = parse_exposition(exporter.render_metrics().decode())
        await exporter.close()
        assert os.path.exists(path)
        assert [line["msg"] for line in logs("error")] == [
            "the state file was deleted or replaced while running; recreating it from memory"
        ]
        assert during[("agent_session_exporter_state_recreated_total", frozenset())] == 1
        restarted = Exporter(config, SqliteStore(path, {s.name: s.provider for s in config.sources}), clock=clock)
        await restarted.open()
        after = parse_exposition(restarted.render_metrics().decode())
        await restarted.close()
    for key, value in before.items():
        if key[0] == "agent_sessions_finished_total":
            assert after[key] >= value > 0, key  # counters never fall back after the restart
    finished = [k for k in during if k[0] == "agent_sessions_finished_total"]
    assert all(after[k] == during[k] for k in finished)


# Hostile strings (issue row 2) ---------------------------------------------------------------


async def test_a_state_file_holding_poisoned_labels_loads_clean(tmp_path, http_session, clock):
    """A state file as 0.1.0 wrote it, before labels were made safe: a lone surrogate (an escape in
    the totals' JSON) or a \\r# in a label key made every render fail, or broke the exposition,
    after every restart. Keys that become one are merged, so no count is lost."""
    path = str(tmp_path / "state.db")
    source = make_source("syntropic137")
    SqliteStore(path, {source.name: "syntropic137"}).close()
    buckets = len(DEFAULT_BUCKETS) + 1
    poisoned = SourceTotals(
        finished={
            ("wf\r# x", "run\r# HELP y", "success"): 2,
            ("wf\n# x", "run\n# HELP y", "success"): 3,
            ("", "lone\ud800", "error"): 1,
        },
        duration_buckets={("wf\r# x", "success"): [1] + [0] * (buckets - 1), ("wf\n# x", "success"): [0] * (buckets - 1) + [4]},
        duration_sum={("wf\r# x", "success"): 1.0, ("wf\n# x", "success"): 400.0},
        bounds=list(DEFAULT_BUCKETS),
        warnings={"wf\r# x": 1.0},
        errors={"": 1, "wf\x00": 2},
        tokens={("wf\x85", "total"): 10.0},
        cost={("", "model\udfff"): 0.5},
        names={"wf\r# x": "Name\x1b[31m"},
        active_series={("wf\r# x", "run\r"), ("wf\n# x", "run\n")},
        folded={("active", "workflow"): ["wf\r# x", "wf\n# x"]},
    )
    db = sqlite3.connect(path)
    db.execute("INSERT INTO sources VALUES (?, 'syntropic137', 100.0, 200.0, ?)", (source.name, totals_to_json(poisoned)))
    db.execute("INSERT INTO pending VALUES (?, 'p-1', 190.0, 'run\r# HELP z', 191.0, NULL, NULL, 'wf\n# x')", (source.name,))
    db.execute("INSERT INTO counted VALUES (?, 'c-1', 150.0)", (source.name,))
    db.commit()
    db.close()
    store = SqliteStore(path, {source.name: "syntropic137"})
    state = store.load(source.name)
    totals = state.totals
    assert totals.finished == {("wf\ufffd# x", "run\ufffd# HELP y", "success"): 5, ("", "lone\ufffd", "error"): 1}
    assert totals.duration_buckets == {("wf\ufffd# x", "success"): [1] + [0] * (buckets - 2) + [4]}
    assert totals.duration_sum == {("wf\ufffd# x", "success"): 401.0}
    assert totals.errors == {"": 1, "wf\ufffd": 2} and totals.tokens == {("wf\ufffd", "total"): 10.0}
    assert totals.cost == {("", "model\ufffd"): 0.5} and totals.names == {"wf\ufffd# x": "Name\ufffd[31m"}
    assert totals.active_series == {("wf\ufffd# x", "run\ufffd")}
    assert totals.folded == {("active", "workflow"): ["wf\ufffd# x"]}
    assert state.pending["p-1"].status == "run\ufffd# HELP z" and state.pending["p-1"].workflow == "wf\ufffd# x"
    assert state.counted == {"c-1": 150.0}
    h = Harness(source, http_session, clock, store=store)
    for openmetrics in (False, True):
        families = check_exposition(generate_openmetrics(h.registry) if openmetrics else generate_latest(h.registry), openmetrics)
        assert sum(s.value for f in families for s in f.samples if s.name == "agent_sessions_finished_total") == 6
