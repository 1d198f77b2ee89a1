"""One module per provider API; each turns pages into SessionRecords."""

from __future__ import annotations

from ..config import SourceConfig
from ..http_client import HttpClient
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


def make_provider(source: SourceConfig, http: HttpClient) -> Provider:
    return PROVIDER_CLASSES[source.provider](source, http)


__all__ = ["PROVIDER_CLASSES", "PendingRef", "PollResult", "PollWindow", "Provider", "make_provider"]
