"""Shards: which of the configured sources one of several replicas polls (``--shard``, ``--total-shards``).

Every replica reads the whole config and keeps the sources whose name hashes to its shard. The hash
is SHA-256 of the name (never Python's ``hash()``, which is salted per process), mapped onto the
shards by jump consistent hashing (Lamping and Veach, 2014): from M shards to M + 1, only the
sources that land on the new shard move (about 1/(M + 1) of them), none between the old ones.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from agent_session_exporter.config import Config

_MASK64 = (1 << 64) - 1
_POD_ORDINAL = re.compile(r"-(0|[1-9][0-9]*)$")


def shard_of(name: str, total: int) -> int:
    """The shard, from 0 to ``total - 1``, that the source called ``name`` belongs to."""
    if total < 1:
        raise ValueError("total must be at least 1")
    key = int.from_bytes(hashlib.sha256(name.encode("utf-8")).digest()[:8], "big")
    bucket, jump = -1, 0
    while jump < total:
        bucket = jump
        key = (key * 2862933555777941757 + 1) & _MASK64
        jump = int((bucket + 1) * (float(1 << 31) / float((key >> 33) + 1)))
    return bucket


def pod_ordinal(pod_name: str) -> int:
    """The ordinal of a StatefulSet pod, the number its name ends with (``agent-session-exporter-2``: 2)."""
    match = _POD_ORDINAL.search(pod_name)
    if match is None:
        raise ValueError("is not a StatefulSet pod's name (<set>-<ordinal>)")
    return int(match.group(1))


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``total``; ``Shard(0, 1)``, the default, holds every source."""

    index: int = 0
    total: int = 1

    def __post_init__(self) -> None:
        if self.total < 1:
            raise ValueError("--total-shards must be at least 1")
        if not 0 <= self.index < self.total:
            raise ValueError(f"the shard must be from 0 to {self.total - 1} (--total-shards {self.total})")

    def holds(self, name: str) -> bool:
        return self.total == 1 or shard_of(name, self.total) == self.index

    def select(self, config: Config) -> Config:
        """``config`` with only this shard's sources (the whole config when there is one shard)."""
        if self.total == 1:
            return config
        return config.model_copy(update={"sources": tuple(s for s in config.sources if self.holds(s.name))})
