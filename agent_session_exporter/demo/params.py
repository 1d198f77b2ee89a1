"""What every simulated API shares: its query parameters checked as the real one checks them, its
error answers, its timestamps, and its sessions newest first."""

from __future__ import annotations

from datetime import datetime, timezone

from aiohttp import web

from agent_session_exporter.demo.sessions import SessionFactory, SimSession
from agent_session_exporter.timeparse import parse_timestamp


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def bad(message: str, status: int = 400) -> web.Response:
    return web.json_response({"error": message}, status=status)


def int_param(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    if not raw.lstrip("-").isdigit() or not low <= int(raw) <= high:
        raise web.HTTPUnprocessableEntity(text=f'{{"error": "{name} must be {low}..{high}"}}', content_type="application/json")
    return int(raw)


def time_param(request: web.Request, name: str) -> float | None:
    raw = request.query.get(name)
    if raw is None:
        return None
    try:
        return parse_timestamp(raw)
    except ValueError:
        raise web.HTTPUnprocessableEntity(
            text=f'{{"error": "{name} is not ISO 8601"}}', content_type="application/json"
        ) from None


def by_start(factory: SessionFactory, newest_first: bool = True) -> list[SimSession]:
    """The factory's sessions by start time (then id), newest first unless asked otherwise."""
    return sorted(factory.sessions.values(), key=lambda s: (s.started_at, s.id), reverse=newest_first)
