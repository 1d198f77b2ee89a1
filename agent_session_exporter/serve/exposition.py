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

from agent_session_exporter.serve.blocks import FamilyBlocks, deflated, gzip_of
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
        #: format -> every part's blocks, family by family (and deflated, for gzip)
        self._tables: dict[bool, FamilyBlocks] = {False: FamilyBlocks(), True: FamilyBlocks()}
        #: format -> the (source, part)s changed since that format's last render
        self._stale: dict[bool, set[tuple[str, str]]] = {False: set(), True: set()}
        #: format -> the exporter-wide registry's exposition (and deflated), None once it changed
        self._global_text: dict[bool, tuple[bytes, bytes] | None] = {False: None, True: None}

    def add_source(self, name: str, parts: dict[str, Any]) -> None:
        """A source's collectors by part: "self" changes after every cycle, the others when told."""
        self._sources[name] = parts
        for table in self._tables.values():
            for part in parts:
                table.add_part((name, part))
        self.source_changed(name, everything=True)

    def remove_source(self, name: str) -> None:
        parts = self._sources.pop(name, {})
        for openmetrics, table in self._tables.items():
            for part in parts:
                table.remove_part((name, part))
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
            headers, blocks = render_families(collector, openmetrics)
        except Exception as exc:  # noqa: BLE001 - one source's render must not fail every scrape
            log.error(
                "rendering a source's metrics failed; its previous values are served",
                source=name,
                part=part,
                error=str(exc),
                exc_info=exc,
            )
            return
        self._tables[openmetrics].set(key, headers, blocks)

    async def render_async(self, openmetrics: bool = False, gzipped: bool = False) -> bytes:
        """``render`` (or ``render_gzip``), the parts that changed rendered one per step of the event loop
        (a scrape after many cycles renders many sources, and holds the loop no longer than one)."""
        stale, self._stale[openmetrics] = list(self._stale[openmetrics]), set()
        try:
            while stale:
                self._render_part(stale.pop(), openmetrics)
                if stale:
                    await asyncio.sleep(0)
        finally:
            self._stale[openmetrics].update(stale)  # a scrape given up on leaves the rest to the next
        return self.render_gzip(openmetrics) if gzipped else self.render(openmetrics)

    def global_changed(self) -> None:
        self._global_text = {False: None, True: None}

    def _ends(self, openmetrics: bool) -> tuple[tuple[bytes, bytes], bytes]:
        """The exporter-wide registry's text (and deflated), rendered again only after it changed; and
        the live registry's text (process metrics, which change on their own)."""
        generate: Callable[[CollectorRegistry], bytes] = _FORMATS[openmetrics]
        global_text = self._global_text[openmetrics]
        if global_text is None:
            text = generate(self._global).removesuffix(_EOF)
            global_text = self._global_text[openmetrics] = (text, deflated(text))
        return global_text, generate(self._live)

    def render(self, openmetrics: bool = False) -> bytes:
        if self._stale[openmetrics]:
            self._render_stale(openmetrics)
        (global_text, _), live = self._ends(openmetrics)
        return b"".join([global_text, *self._tables[openmetrics].pieces(), live])

    def render_gzip(self, openmetrics: bool = False) -> bytes:
        """``render``, gzipped: each block's deflated form is cached with it, so only what changed since
        it was last compressed is compressed (and the process metrics, which are live)."""
        if self._stale[openmetrics]:
            self._render_stale(openmetrics)
        (global_text, global_deflated), live = self._ends(openmetrics)
        table = self._tables[openmetrics]
        text = b"".join([global_text, *table.pieces(), live])
        return gzip_of([global_deflated, *table.deflated_pieces(), deflated(live)], text)
