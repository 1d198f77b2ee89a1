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
from agent_session_exporter.read.providers.kapso import KapsoProvider
from agent_session_exporter.read.providers.syntropic137 import Syntropic137Provider
from agent_session_exporter.read.providers.whatabot import WhatabotProvider
from agent_session_exporter.read.source import SourceBase

PROVIDER_CLASSES: dict[str, type[Provider[Any]]] = {
    "whatabot": WhatabotProvider,
    "dify": DifyProvider,
    "syntropic137": Syntropic137Provider,
    "honeyhive": HoneyhiveProvider,
    "kapso": KapsoProvider,
}


def make_provider(source: SourceBase, session: aiohttp.ClientSession, observer: RequestObserver,
                  sleep: Callable[[float], Any] = asyncio.sleep, clock: Callable[[], float] = time.time) -> Provider[Any]:
    """The source's provider, with an HTTP client that authenticates as that provider declares, and
    the exporter's clock (``observed_at``)."""
    cls = PROVIDER_CLASSES[source.provider]
    return cls(source, HttpClient(session, source, observer, cls.AUTH, sleep=sleep), clock=clock)


__all__ = ["PROVIDER_CLASSES", "Provider", "make_provider"]
