"""Where a source's state is kept between cycles and restarts: the store protocol the poller commits
each cycle's delta through, and the store without persistence (no ``state_path``). The SQLite store
is ``keep/sqlite.py``."""

from __future__ import annotations

from typing import Callable, Protocol

from agent_session_exporter.count.state import CycleDelta, SourceState, SourceTotals


class Store(Protocol):
    """Loads each source's state once, then commits every cycle's delta in one transaction."""

    def attach(self, snapshot: Callable[[], dict[str, SourceState]], on_recreate: Callable[[], None]) -> None: ...
    def load(self, source: str) -> SourceState: ...
    def commit(self, source: str, delta: CycleDelta, totals: SourceTotals) -> None: ...
    def check(self) -> None: ...
    def retain_only(self, providers: dict[str, str]) -> list[str]: ...
    def close(self) -> None: ...


class MemoryStore:
    """No persistence (no state_path): the pollers' state objects, kept for config reloads."""

    def __init__(self) -> None:
        self.states: dict[str, SourceState] = {}
        self.providers: dict[str, str] = {}

    def attach(self, snapshot: Callable[[], dict[str, SourceState]], on_recreate: Callable[[], None]) -> None:
        return None  # nothing on disk to lose

    def load(self, source: str) -> SourceState:
        return self.states.setdefault(source, SourceState())

    def commit(self, source: str, delta: CycleDelta, totals: SourceTotals) -> None:
        return None  # the collector applies the delta to the very object load() returned

    def check(self) -> None:
        return None  # nothing on disk to lose

    def retain_only(self, providers: dict[str, str]) -> list[str]:
        """Keep the state of sources still configured with the same provider (name -> provider)."""
        dropped = [name for name in self.states if self.providers.get(name) != providers.get(name)]
        for name in dropped:
            del self.states[name]
        self.providers = dict(providers)
        return dropped

    def close(self) -> None:
        return None
