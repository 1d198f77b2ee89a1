"""One module per provider API; each turns pages into SessionRecords and declares what it is."""

from __future__ import annotations

import asyncio
from typing import Any, Callable

import aiohttp

from ..http_client import HttpClient, RequestObserver
from ..sourceconfig import SourceBase
from ..state import KnownRows
from .base import PendingRef, PollResult, PollWindow, Provider
from .dify import DifyProvider
from .honeyhive import HoneyhiveProvider
from .kapso import KapsoProvider
from .syntropic137 import Syntropic137Provider
from .whatabot import WhatabotProvider

PROVIDER_CLASSES: dict[str, type[Provider]] = {
    "whatabot": WhatabotProvider,
    "dify": DifyProvider,
    "syntropic137": Syntropic137Provider,
    "honeyhive": HoneyhiveProvider,
    "kapso": KapsoProvider,
}


def make_provider(source: SourceBase, session: aiohttp.ClientSession, observer: RequestObserver,
                  sleep: Callable[[float], Any] = asyncio.sleep) -> Provider:
    """The source's provider, with an HTTP client that authenticates as that provider declares."""
    cls = PROVIDER_CLASSES[source.provider]
    return cls(source, HttpClient(session, source, observer, cls.AUTH, sleep=sleep))


__all__ = ["PROVIDER_CLASSES", "KnownRows", "PendingRef", "PollResult", "PollWindow", "Provider", "make_provider"]
