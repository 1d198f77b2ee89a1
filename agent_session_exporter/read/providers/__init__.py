"""One module per provider API; each turns pages into SessionRecords and declares what it is."""

from __future__ import annotations

import asyncio
import time
from typing import Any, Callable

import aiohttp

from agent_session_exporter.read.http_client import HttpClient, RequestObserver
from agent_session_exporter.read.providers.base import Provider
from agent_session_exporter.read.providers.dify import DifyProvider
from agent_session_exporter.read.providers.honeyhive import HoneyhiveProvider
from agent_session_exporter.read.providers.whatabot import WhatabotProvider
from agent_session_exporter.read.source import SourceBase
from agent_session_exporter.read.spec.load import CustomSource, builtin_specs, spec_provider_class

#: Providers written in Python: what a spec cannot say (Whatabot's offset probe and date presets, Dify's
#: typed fast path and per-second lookups, HoneyHive's settle rule and its three APIs).
PYTHON_PROVIDERS: dict[str, type[Provider[Any]]] = {
    "whatabot": WhatabotProvider,
    "dify": DifyProvider,
    "honeyhive": HoneyhiveProvider,
}
#: Every provider a source may name: those in Python, those declared by the specs shipped in the
#: package, and ``custom`` (a user's spec; its class is the source's own, ``CustomSource.provider_class``).
_DECLARED = {name: spec_provider_class(spec) for name, spec in builtin_specs().items()}
PROVIDER_CLASSES: dict[str, type[Provider[Any]]] = {
    name: PYTHON_PROVIDERS.get(name) or _DECLARED[name]
    for name in ("whatabot", "dify", "syntropic137", "honeyhive", "kapso", *sorted(_DECLARED))
}
CUSTOM = "custom"


def make_provider(
    source: SourceBase,
    session: aiohttp.ClientSession,
    observer: RequestObserver,
    sleep: Callable[[float], Any] = asyncio.sleep,
    clock: Callable[[], float] = time.time,
) -> Provider[Any]:
    """The source's provider, with an HTTP client that authenticates as that provider declares, and
    the exporter's clock (``observed_at``)."""
    cls = source.provider_class if isinstance(source, CustomSource) else PROVIDER_CLASSES[source.provider]
    return cls(source, HttpClient(session, source, observer, cls.AUTH, sleep=sleep), clock=clock)


__all__ = ["CUSTOM", "CustomSource", "PROVIDER_CLASSES", "Provider", "make_provider"]
