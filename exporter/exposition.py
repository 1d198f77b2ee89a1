"""``/metrics`` assembled from cached blocks, so a scrape costs in proportion to what changed.

Each source's series (its session metrics and its self-metrics) live in a registry of their own.
When a source's cycle ends, that registry alone is rendered, by prometheus_client itself (so every
line is formatted exactly as it formats it, exemplars included), and cut into one block of sample
lines per metric family. A scrape then joins, family by family, the header lines and every
source's block: no sample is formatted at scrape time, however many sources there are. The
exporter-wide registry is rendered again only after it changed; process metrics are live.
"""

from __future__ import annotations

from typing import Callable

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics

_FORMATS = {False: generate_latest, True: generate_openmetrics}
_EOF = b"# EOF\n"


def split_families(text: bytes) -> tuple[dict[str, bytes], dict[str, bytes]]:
    """The header lines (``# HELP``, ``# TYPE``, ``# UNIT``) and the sample lines of each family of
    an exposition, in order."""
    headers: dict[str, bytes] = {}
    samples: dict[str, list[bytes]] = {}
    name = ""
    for line in text.removesuffix(_EOF).splitlines(keepends=True):
        if line.startswith(b"# "):
            kind, _, rest = line[2:].partition(b" ")
            if kind == b"HELP":
                name = rest.partition(b" ")[0].decode()
                headers[name] = line
                samples[name] = []
            elif name:
                headers[name] += line
        elif name:
            samples[name].append(line)
    return headers, {family: b"".join(lines) for family, lines in samples.items()}


class Exposition:
    """Cached blocks of every source, and the joins of them that scrapes get."""

    def __init__(self, global_registry: CollectorRegistry, live_registry: CollectorRegistry) -> None:
        self._global = global_registry
        self._live = live_registry
        self._sources: dict[str, CollectorRegistry] = {}
        #: Formats asked for so far (OpenMetrics or not): a changed source is rendered in each at once.
        self._formats: set[bool] = set()
        #: format -> family -> header lines, in the order the families were first seen
        self._headers: dict[bool, dict[str, bytes]] = {False: {}, True: {}}
        #: format -> source -> family -> sample lines
        self._blocks: dict[bool, dict[str, dict[str, bytes]]] = {False: {}, True: {}}
        #: format -> the exporter-wide registry's exposition, None once it changed
        self._global_text: dict[bool, bytes | None] = {False: None, True: None}

    def add_source(self, name: str, registry: CollectorRegistry) -> None:
        self._sources[name] = registry
        self.source_changed(name)

    def remove_source(self, name: str) -> None:
        self._sources.pop(name, None)
        for blocks in self._blocks.values():
            blocks.pop(name, None)

    def source_changed(self, name: str) -> None:
        """Render one source's blocks again (when its cycle ended), in every format scraped so far."""
        registry = self._sources.get(name)
        if registry is None:
            return
        for openmetrics in self._formats:
            headers, blocks = split_families(_FORMATS[openmetrics](registry))
            known = self._headers[openmetrics]
            for family, header in headers.items():
                known.setdefault(family, header)
            self._blocks[openmetrics][name] = blocks

    def global_changed(self) -> None:
        self._global_text = {False: None, True: None}

    def render(self, openmetrics: bool = False) -> bytes:
        if openmetrics not in self._formats:
            self._formats.add(openmetrics)
            for name in self._sources:
                self.source_changed(name)
        generate: Callable[[CollectorRegistry], bytes] = _FORMATS[openmetrics]
        global_text = self._global_text[openmetrics]
        if global_text is None:
            global_text = self._global_text[openmetrics] = generate(self._global).removesuffix(_EOF)
        parts = [global_text]
        blocks = list(self._blocks[openmetrics].values())
        for family, header in self._headers[openmetrics].items():
            parts.append(header)
            parts.extend(source.get(family, b"") for source in blocks)
        parts.append(generate(self._live))
        return b"".join(parts)
