"""``/metrics`` assembled from cached blocks, so a scrape costs in proportion to what changed.

Each source's series come from collectors of their own, in parts: its self-metrics (which change
every cycle) and its session metrics (which change when sessions start or end). When a source's
cycle ends, the parts that changed are rendered, by prometheus_client itself (so every line is
formatted exactly as it formats it, exemplars included), and cut into one block of sample lines
per metric family. A scrape then joins, family by family, the header lines and every source's
blocks: no sample is formatted at scrape time, however many sources there are. The exporter-wide
registry is rendered again only after it changed; process metrics are live.
"""

from __future__ import annotations

import io
from typing import Any, Callable

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics

_FORMATS: dict[bool, Callable[[Any], bytes]] = {False: generate_latest, True: generate_openmetrics}
_EOF = b"# EOF\n"


def split_families(text: bytes) -> tuple[dict[str, bytes], dict[str, bytes]]:
    """The header lines (``# HELP``, ``# TYPE``, ``# UNIT``) and the sample lines of each family of
    an exposition, in order.

    Lines end at ``\\n`` alone, as both formats define them: a ``\\r`` is part of a line (a label
    value may hold one, unescaped), so ``splitlines`` would cut a sample in two."""
    headers: dict[str, bytes] = {}
    samples: dict[str, list[bytes]] = {}
    name = ""
    for line in io.BytesIO(text.removesuffix(_EOF)):  # a binary stream's lines end at \n only
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
        #: source -> part name -> a collector (anything with ``collect()``)
        self._sources: dict[str, dict[str, Any]] = {}
        #: Formats asked for so far (OpenMetrics or not): a changed source is rendered in each at once.
        self._formats: set[bool] = set()
        #: format -> family -> header lines, in the order the families were first seen
        self._headers: dict[bool, dict[str, bytes]] = {False: {}, True: {}}
        #: format -> (source, part) -> family -> sample lines
        self._blocks: dict[bool, dict[tuple[str, str], dict[str, bytes]]] = {False: {}, True: {}}
        #: format -> the exporter-wide registry's exposition, None once it changed
        self._global_text: dict[bool, bytes | None] = {False: None, True: None}

    def add_source(self, name: str, parts: dict[str, Any]) -> None:
        """A source's collectors by part: "self" is rendered after every cycle, the others when told."""
        self._sources[name] = parts
        self.source_changed(name, everything=True)

    def remove_source(self, name: str) -> None:
        parts = self._sources.pop(name, {})
        for blocks in self._blocks.values():
            for part in parts:
                blocks.pop((name, part), None)

    def source_changed(self, name: str, everything: bool = True) -> None:
        """Render a source's blocks again (when its cycle ended), in every format scraped so far: its
        self-metrics, and with ``everything`` its other parts too."""
        for part, collector in self._sources.get(name, {}).items():
            if everything or part == "self":
                for openmetrics in self._formats:
                    self._render(name, part, collector, openmetrics)

    def _render(self, name: str, part: str, collector: Any, openmetrics: bool) -> None:
        headers, blocks = split_families(_FORMATS[openmetrics](collector))
        known = self._headers[openmetrics]
        for family, header in headers.items():
            known.setdefault(family, header)
        self._blocks[openmetrics][(name, part)] = blocks

    def global_changed(self) -> None:
        self._global_text = {False: None, True: None}

    def render(self, openmetrics: bool = False) -> bytes:
        if openmetrics not in self._formats:
            self._formats.add(openmetrics)
            for name, parts in self._sources.items():
                for part, collector in parts.items():
                    self._render(name, part, collector, openmetrics)
        generate: Callable[[CollectorRegistry], bytes] = _FORMATS[openmetrics]
        global_text = self._global_text[openmetrics]
        if global_text is None:
            global_text = self._global_text[openmetrics] = generate(self._global).removesuffix(_EOF)
        pieces = [global_text]
        blocks = list(self._blocks[openmetrics].values())
        for family, header in self._headers[openmetrics].items():
            pieces.append(header)
            pieces.extend(source.get(family, b"") for source in blocks)
        pieces.append(generate(self._live))
        return b"".join(pieces)
