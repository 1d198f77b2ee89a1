"""Shared test fixtures."""

from __future__ import annotations

import inspect
import io
import json
from typing import Any
from unittest.mock import Mock

import aiohttp
import aioresponses.core
import pytest
from aiohttp import ClientResponse

from agent_session_exporter.logs import configure_logging

from .helpers import FakeClock

# aioresponses 0.7.x builds ClientResponse without the ``stream_writer`` argument that
# aiohttp 3.14 made required (pnuckowski/aioresponses#289). Give it a default until a fixed
# release exists, rather than pinning aiohttp below its 3.14 security release.
if "stream_writer" in inspect.signature(ClientResponse.__init__).parameters:

    class _CompatClientResponse(ClientResponse):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs.setdefault("stream_writer", Mock(output_size=0))
            super().__init__(*args, **kwargs)

    aioresponses.core.ClientResponse = _CompatClientResponse  # type: ignore[misc]


@pytest.fixture(autouse=True)
def _json_logs() -> None:
    configure_logging("debug", json=True)


class LogLines:
    """The exporter's JSON log lines, written to memory, decoded."""

    def __init__(self) -> None:
        self.stream = io.StringIO()
        configure_logging("debug", json=True, stream=self.stream)

    def __call__(self, level: str | None = None) -> list[dict[str, Any]]:
        lines = [json.loads(line) for line in self.stream.getvalue().splitlines() if line.strip()]
        return [line for line in lines if level is None or line.get("level") == level]


@pytest.fixture
def logs() -> LogLines:
    return LogLines()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def http_session():
    """A real aiohttp client session (aioresponses intercepts it in the provider tests)."""
    async with aiohttp.ClientSession() as session:
        yield session
