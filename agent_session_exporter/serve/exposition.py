"""``/metrics`` assembled from cached blocks, so a scrape costs in proportion to what changed.

Each source's series come from collectors of their own, in parts: its self-metrics (which change
every cycle) and its session metrics (which change when sessions start or end). When a source's
cycle ends, the parts that changed are marked; the next scrape renders them (``serve/textformat.py``,
byte for byte as prometheus_client writes them), each cut into one block of sample lines per metric
family, in the format it asks for. A cycle itself renders nothing: a source whose cycles change
nothing between two scrapes is rendered at most once per scrape, and not at all while nobody
scrapes. A scrape then joins, family by family, the header lines and every source's blocks: no
sample of an unchanged source is formatted at scrape time, however many sources there are. The
exporter-wide registry is rendered again only after it changed; process metrics are live.
"""

from __future__ import annotations

import asyncio
from typing import Any, Callable

import structlog
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics

from agent_session_exporter.serve.textformat import render_families, split_families

__all__ = ["Exposition", "split_families"]

_FORMATS: dict[bool, Callable[[Any], bytes]] = {False: generate_latest, True: generate_openmetrics}
_EOF = b"# EOF\n"
log = structlog.get_logger()


class Exposition:
    """Cached blocks of every source, and the joins of them that scrapes get."""

    def __init__(self, global_registry: CollectorRegistry, live_registry: CollectorRegistry) -> None:
        self._global = global_registry
        self._live = live_registry
        #: source -> part name -> a collector (anything with ``collect()``)
        self._sources: dict[str, dict[str, Any]] = {}
        #: format -> family -> header lines, in the order the families were first seen
        self._headers: dict[bool, dict[str, bytes]] = {False: {}, True: {}}
        #: format -> (source, part) -> family -> sample lines
        self._blocks: dict[bool, dict[tuple[str, str], dict[str, bytes]]] = {False: {}, True: {}}
        #: format -> the (source, part)s changed since that format's last render
        self._stale: dict[bool, set[tuple[str, str]]] = {False: set(), True: set()}
        #: format -> the exporter-wide registry's exposition, None once it changed
        self._global_text: dict[bool, bytes | None] = {False: None, True: None}

    def add_source(self, name: str, parts: dict[str, Any]) -> None:
        """A source's collectors by part: "self" changes after every cycle, the others when told."""
        self._sources[name] = parts
        for openmetrics in (False, True):
            self._blocks[openmetrics].update({(name, part): {} for part in parts})
        self.source_changed(name, everything=True)

    def remove_source(self, name: str) -> None:
        parts = self._sources.pop(name, {})
        for openmetrics, blocks in self._blocks.items():
            for part in parts:
                blocks.pop((name, part), None)
                self._stale[openmetrics].discard((name, part))

    def source_changed(self, name: str, everything: bool = True) -> None:
        """A source's cycle ended: its self-metrics, and with ``everything`` its other parts too, are
        rendered again by the next scrape (of either format)."""
        for part in self._sources.get(name, {}):
            if everything or part == "self":
                self._stale[False].add((name, part))
                self._stale[True].add((name, part))

    def _render_stale(self, openmetrics: bool) -> None:
        stale, self._stale[openmetrics] = self._stale[openmetrics], set()
        for key in stale:
            self._render_part(key, openmetrics)

    def _render_part(self, key: tuple[str, str], openmetrics: bool) -> None:
        name, part = key
        collector = self._sources.get(name, {}).get(part)
        if collector is None:
            return  # the source left the config meanwhile
        try:
            headers, self._blocks[openmetrics][key] = render_families(collector, openmetrics)
        except Exception as exc:  # noqa: BLE001 - one source's render must not fail every scrape
            log.error("rendering a source's metrics failed; its previous values are served", source=name,
                      part=part, error=str(exc), exc_info=exc)
            return
        known = self._headers[openmetrics]
        for family, header in headers.items():
            known.setdefault(family, header)

    async def render_async(self, openmetrics: bool = False) -> bytes:
        """``render``, the parts that changed rendered one per step of the event loop (a scrape after many
        cycles renders many sources, and holds the loop no longer than one of them)."""
        stale, self._stale[openmetrics] = list(self._stale[openmetrics]), set()
        try:
            while stale:
                self._render_part(stale.pop(), openmetrics)
                if stale:
                    await asyncio.sleep(0)
        finally:
            self._stale[openmetrics].update(stale)  # a scrape given up on leaves the rest to the next
        return self.render(openmetrics)

    def global_changed(self) -> None:
        self._global_text = {False: None, True: None}

    def render(self, openmetrics: bool = False) -> bytes:
        if self._stale[openmetrics]:
            self._render_stale(openmetrics)
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
