"""Shards: every replica reads the whole config and polls the sources whose name hashes to its shard."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter

import pytest
import yaml

from agent_session_exporter.config import parse_config
from agent_session_exporter.demo.runner import DEMO_SOURCES
from agent_session_exporter.shards import Shard, pod_ordinal, shard_of

from .helpers import ROOT, parse_exposition, run
from .test_web import Exporter

#: Pinned: a change of the hash moves sources between replicas in every sharded deployment.
KNOWN = {
    "wb": [1, 1, 1, 1],
    "dy": [0, 0, 0, 0],
    "sy": [1, 2, 4, 4],
    "hh": [0, 0, 3, 8],
    "ka": [0, 0, 0, 15],
    "team-a-dify": [0, 0, 0, 10],
    "team-b-kapso": [0, 0, 0, 0],
    "prod-honeyhive-events": [1, 2, 2, 6],
}
NAMES = [f"source-{i}" for i in range(2000)]


def test_a_sources_shard_is_pinned_and_the_same_in_every_process():
    assert {name: [shard_of(name, m) for m in (2, 3, 5, 16)] for name in KNOWN} == KNOWN
    probe = (
        "import json, sys; from agent_session_exporter.shards import shard_of; "
        "print(json.dumps([shard_of(n, 7) for n in sys.argv[1:]]))"
    )
    answers = set()
    for seed in ("0", "1", "4242"):  # Python's own str hash differs with each of these
        result = subprocess.run(
            [sys.executable, "-c", probe, *NAMES[:200]],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "PYTHONHASHSEED": seed},
            check=True,
        )
        answers.add(result.stdout)
    assert len(answers) == 1
    assert answers.pop().strip() == str([shard_of(n, 7) for n in NAMES[:200]]).replace("'", '"')


@pytest.mark.parametrize("total", [1, 2, 3, 4, 7])
def test_the_shards_split_the_sources_evenly_and_each_source_into_exactly_one(total):
    shards = [Shard(i, total) for i in range(total)]
    holders = Counter(sum(shard.holds(name) for shard in shards) for name in NAMES)
    assert holders == Counter({1: len(NAMES)})
    sizes = Counter(shard_of(name, total) for name in NAMES)
    assert set(sizes) == set(range(total))
    for size in sizes.values():
        assert abs(size - len(NAMES) / total) < 0.2 * len(NAMES) / total, sizes


@pytest.mark.parametrize("total", [1, 2, 3, 5])
def test_one_shard_more_moves_only_the_sources_that_land_on_it(total):
    moved = [name for name in NAMES if shard_of(name, total + 1) != shard_of(name, total)]
    assert {shard_of(name, total + 1) for name in moved} == {total}
    assert abs(len(moved) / len(NAMES) - 1 / (total + 1)) < 0.05


def test_a_shard_selects_its_sources_from_the_config():
    config = parse_config(
        {"sources": [{"name": name, "provider": "syntropic137", "base_url": "http://127.0.0.1:1"} for name in KNOWN]}, {}
    )
    assert Shard().select(config) is config
    assert [s.name for s in Shard(1, 2).select(config).sources] == [n for n, shards in KNOWN.items() if shards[0] == 1]
    assert [s.name for s in Shard(0, 2).select(config).sources] == [n for n, shards in KNOWN.items() if shards[0] == 0]
    alone = config.model_copy(update={"sources": config.sources[:1]})  # "wb": shard 1 of 2
    assert Shard(0, 2).select(alone).sources == () and Shard(1, 2).select(alone).sources == alone.sources


def test_a_statefulset_pods_name_gives_its_ordinal():
    assert pod_ordinal("agent-session-exporter-0") == 0
    assert pod_ordinal("agent-session-exporter-12") == 12
    for name in ("agent-session-exporter", "exporter-01", "exporter-", "exporter-1a", ""):
        with pytest.raises(ValueError):
            pod_ordinal(name)
    for index, total in ((-1, 2), (2, 2), (0, 0)):
        with pytest.raises(ValueError):
            Shard(index, total)


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--total-shards", "2"], "--total-shards needs --shard or --shard-from-pod-name"),
        (["--shard", "2", "--total-shards", "2"], "the shard must be from 0 to 1"),
        (["--shard", "1"], "the shard must be from 0 to 0"),
        (["--shard", "0", "--total-shards", "0"], "--total-shards must be at least 1"),
        (["--shard-from-pod-name", "agent-session-exporter-2", "--total-shards", "2"], "the shard must be from 0 to 1"),
        (["--shard-from-pod-name", "agent-session-exporter", "--total-shards", "2"], "is not a StatefulSet pod's name"),
        (["--shard", "0", "--shard-from-pod-name", "x-0", "--total-shards", "2"], "not allowed with argument"),
    ],
)
def test_shard_flags_that_name_no_shard_are_refused(flags, message):
    result = run("--demo", "--once", *flags)
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert not result.stdout


def polled(exposition: str) -> set[str]:
    """The sources a process polled: those with upstream requests, and with a source_up series at all."""
    samples = parse_exposition(exposition)
    requested = {
        dict(labels)["source"]
        for (name, labels), value in samples.items()
        if name == "agent_session_exporter_requests_total" and value > 0
    }
    up = {dict(labels)["source"] for (name, labels), _ in samples.items() if name == "agent_session_exporter_source_up"}
    assert requested == up
    return requested


def test_two_processes_of_two_shards_poll_disjoint_sources_that_together_are_all():
    shards = []
    for flags in (["--shard", "0"], ["--shard-from-pod-name", "agent-session-exporter-1"]):
        result = run("--demo", "--once", "--total-shards", "2", *flags)
        assert result.returncode == 0, result.stderr[-2000:]
        shards.append(polled(result.stdout))
    assert shards[0] and shards[1]
    assert not shards[0] & shards[1]
    assert shards[0] | shards[1] == set(DEMO_SOURCES)
    assert shards[1] == {name for name in DEMO_SOURCES if shard_of(name, 2) == 1}
    # No shard label: `source` tells the replicas' series apart.
    assert not any("shard" in dict(labels) for _, labels in parse_exposition(result.stdout))
    unsharded = run("--demo", "--once")
    assert unsharded.returncode == 0 and polled(unsharded.stdout) == set(DEMO_SOURCES)


def test_a_replica_whose_shard_holds_no_source_serves_its_own_metrics_and_says_so():
    empty = min(set(range(8)) - {shard_of(name, 8) for name in DEMO_SOURCES})
    result = run("--demo", "--once", "--shard", str(empty), "--total-shards", "8")
    assert result.returncode == 0, result.stderr[-2000:]
    assert polled(result.stdout) == set() and "agent_session_exporter_build_info" in result.stdout
    assert "this shard holds none of the configured sources" in result.stderr


def test_a_reload_keeps_each_replica_to_its_shard_and_check_config_sees_every_source(tmp_path):
    config = tmp_path / "config.yaml"

    def write(names: list[str]) -> None:
        config.write_text(
            yaml.safe_dump(
                {
                    "interval": 60,
                    "sources": [
                        {"name": name, "provider": "syntropic137", "base_url": "http://127.0.0.1:1", "retries": 0}
                        for name in names
                    ],
                }
            )
        )

    first, second = NAMES[:10], NAMES[5:25]
    write(first)
    check = run("--config.file", str(config), "--check-config", "--shard", "1", "--total-shards", "2")
    assert check.returncode == 0 and check.stdout.startswith(f"config OK: {len(first)} sources"), check.stderr
    replicas = [Exporter(tmp_path, "--config.file", str(config), "--shard", str(i), "--total-shards", "2") for i in (0, 1)]
    try:
        started = [set(r.wait_for("listening")["sources"]) for r in replicas]
        assert started == [{n for n in first if shard_of(n, 2) == i} for i in (0, 1)]
        write(second)
        reloaded = []
        for replica in replicas:
            replica.process.send_signal(signal.SIGHUP)
            reloaded.append(set(replica.wait_for("config reloaded")["sources"]))
        assert reloaded == [{n for n in second if shard_of(n, 2) == i} for i in (0, 1)]
        assert reloaded[0] and reloaded[1] and not reloaded[0] & reloaded[1] and reloaded[0] | reloaded[1] == set(second)
    finally:
        assert [replica.stop() for replica in replicas] == [0, 0]
