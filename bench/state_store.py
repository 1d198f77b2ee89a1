"""State-store benchmark: commit time per cycle of N new sessions, and bytes per tracked session.

    python bench/state_store.py [--sessions-per-cycle 1000] [--cycles 200] [--window-cycles 10]

Each cycle commits N newly counted ids, N/10 pending upserts, the counter totals, and prunes the
ids that left the overlap window (``--window-cycles`` cycles old), as the poller does.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agent_session_exporter.count.state import (  # noqa: E402
    CycleDelta,
    PendingSession,
    SourceTotals,  # noqa: E402
)
from agent_session_exporter.keep.sqlite import SqliteStore  # noqa: E402


def run(sessions_per_cycle: int, cycles: int, window_cycles: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "state.db")
        store = SqliteStore(path, {"bench": "syntropic137"})
        totals = SourceTotals()
        timings = []
        history: list[list[str]] = []
        for cycle in range(cycles):
            ids = [f"{cycle:06d}-{i:06d}-7f3c9a2e-5b1d-4c8e-9f0a" for i in range(sessions_per_cycle)]
            increments = SourceTotals(
                finished={("completed", "success"): sessions_per_cycle},
                duration_buckets={"success": [sessions_per_cycle] + [0] * 10},
                duration_sum={"success": 1.5 * sessions_per_cycle},
                tokens={"input": 100.0 * sessions_per_cycle},
                cost={"m": 0.01},
            )
            totals = totals.plus(increments)
            pruned = history.pop(0) if len(history) >= window_cycles else []
            delta = CycleDelta(
                floor=0.0,
                watermark=float(cycle),
                counted_add={sid: float(cycle) for sid in ids},
                counted_remove=pruned,
                pending_upsert={
                    f"p-{cycle}-{i}": PendingSession(float(cycle), "running", float(cycle))
                    for i in range(sessions_per_cycle // 10)
                },
                pending_remove=[f"p-{cycle - 1}-{i}" for i in range(sessions_per_cycle // 10)],
                increments=increments,
            )
            started = time.perf_counter()
            store.commit("bench", delta, totals)
            timings.append(time.perf_counter() - started)
            history.append(ids)
        store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        rows = store.row_counts()
        size = os.path.getsize(path)
        store.close()
    timings_ms = sorted(t * 1000 for t in timings)
    tracked = rows["counted"] + rows["pending"]
    return {
        "commit_median_ms": statistics.median(timings_ms),
        "commit_p95_ms": timings_ms[int(len(timings_ms) * 0.95) - 1],
        "tracked_sessions": tracked,
        "file_bytes": size,
        "bytes_per_tracked_session": size / tracked,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sessions-per-cycle", type=int, default=1000)
    parser.add_argument("--cycles", type=int, default=200)
    parser.add_argument("--window-cycles", type=int, default=10)
    args = parser.parse_args()
    figures = run(args.sessions_per_cycle, args.cycles, args.window_cycles)
    print(
        f"state store: {args.sessions_per_cycle} new sessions per cycle, {args.cycles} cycles, "
        f"window {args.window_cycles} cycles (synchronous=FULL, WAL)"
    )
    for key, value in figures.items():
        print(f"  {key:28s} {value:12.2f}" if isinstance(value, float) else f"  {key:28s} {value:12d}")


if __name__ == "__main__":
    main()
