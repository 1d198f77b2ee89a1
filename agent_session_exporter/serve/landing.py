"""The ``/`` landing page: each source's health, and its latest sessions that ended in error or timeout.

Everything shown is escaped and passed through the log redactor, so no configured secret (and no
credential an upstream echoes in an error text) reaches the page.
"""

from __future__ import annotations

import html
import time
from datetime import datetime, timezone
from typing import Mapping
from urllib.parse import quote

from agent_session_exporter import __version__
from agent_session_exporter.logs import redactor
from agent_session_exporter.model import SessionRecord
from agent_session_exporter.serve.alerting import ERROR_RATIO, MIN_FINISHED, WINDOW_SECONDS
from agent_session_exporter.serve.status import SourceStatus

#: An error text is cut to this many characters on the page.
ERROR_SHOWN = 120
_STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#1d2430;background:#f6f7f9}
h1{font-size:20px;margin:0 0 4px} h2{font-size:16px;margin:28px 0 8px}
table{border-collapse:collapse;background:#fff;width:100%;box-shadow:0 1px 2px #0002}
th,td{padding:6px 10px;border-bottom:1px solid #e3e6ea;text-align:left;vertical-align:top}
th{background:#eef0f3;font-weight:600} td.num{text-align:right;white-space:nowrap}
tr.failing td{background:#fdecec} tr.failing td:first-child{border-left:4px solid #d1242f}
tr.ok td:first-child{border-left:4px solid #1a7f37}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;font-weight:600;color:#fff}
.bad{background:#d1242f} .warn{background:#bf8700} .good{background:#1a7f37} .quiet{background:#8c959f}
.err{font-family:ui-monospace,monospace;font-size:12px;color:#57606a} a{color:#0969da}
"""


def _text(value: object, limit: int | None = None) -> str:
    """Redacted, then cut to ``limit`` characters, then escaped: cutting first could leave part of a
    secret that the redactor no longer recognises."""
    return html.escape(redactor.redact(str(value))[:limit])


def _when(timestamp: float | None) -> str:
    if timestamp is None:
        return "-"
    return datetime.fromtimestamp(timestamp, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _failure_row(name: str, status: SourceStatus, record: SessionRecord) -> str:
    workflow = record.workflow or "-"
    label = status.state.totals.names.get(workflow)
    shown = f"{label} ({workflow})" if label else workflow
    duration = f"{record.duration_seconds:.1f} s" if record.duration_seconds is not None else "-"
    link = "-"
    if status.recent.link is not None:
        href = f"/sessions/{quote(name, safe='')}/{quote(record.session_id, safe='')}"
        if record.workflow:
            href += f"?workflow={quote(record.workflow, safe='')}"
        link = f"<a href='{html.escape(href)}'>open</a>"
    cells = (
        _text(_when(record.finished_at)),
        _text(record.status),
        _text(shown),
        duration,
        f"<span class='err'>{_text(record.error_message or '', ERROR_SHOWN) or '-'}</span>",
        _text(record.session_id, 64),
        link,
    )
    return "<tr>" + "".join(f"<td>{cell}</td>" for cell in cells) + "</tr>"


def render_landing(sources: Mapping[str, SourceStatus], telemetry_path: str, now: float | None = None) -> str:
    """The page; a source is marked failing when its last poll failed, or as the error alert would
    fire (``serve/alerting.py``): more than ``ERROR_RATIO`` of at least ``MIN_FINISHED`` sessions
    finished in its window were errors."""
    now = time.time() if now is None else now
    rows: list[str] = []
    sections: list[tuple[bool, int, str]] = []
    for name, status in sources.items():
        failures = list(status.recent.failures)
        finished, failed = status.recent.failure_ratio()
        ratio = failed / finished if finished else 0.0
        poll_failing = status.last_result.startswith("error")
        failing = poll_failing or (finished >= MIN_FINISHED and ratio > ERROR_RATIO)
        age = f"{now - status.last_success:.0f}s ago" if status.last_success else "never"
        if poll_failing:
            state = "<span class='badge bad'>poll failing</span>"
        elif failed:
            tone = "bad" if failing else "warn"
            state = (
                f"<span class='badge {tone}'>{failed} of {finished} ended in error in the last "
                f"{WINDOW_SECONDS / 60:g} minutes ({ratio:.0%})</span>"
            )
        elif status.last_success:
            state = "<span class='badge good'>ok</span>"
        else:
            state = "<span class='badge quiet'>not polled yet</span>"
        rows.append(
            f"<tr class='{'failing' if failing else 'ok'}'><td>{_text(name)}</td>"
            f"<td>{_text(status.source.provider)}</td><td>{state}</td><td>{_text(age)}</td>"
            f"<td>{_text(status.last_result)}</td></tr>"
        )
        if failures:
            body = "".join(_failure_row(name, status, r) for r in reversed(failures))
            sections.append(
                (
                    not failing,
                    len(sections),
                    f"<h2>Recent failures: {_text(name)}</h2><table><tr><th>ended</th><th>status</th><th>workflow</th>"
                    f"<th>duration</th><th>error</th><th>session</th><th>link</th></tr>{body}</table>",
                )
            )
    sections.sort()  # failing sources' failures first
    deprecated = "".join(
        f"<li>{_text(name)}: {_text(status.source.deprecated)}</li>"
        for name, status in sources.items()
        if status.source.deprecated
    )
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>Agent session exporter</title>"
        f"<style>{_STYLE}</style></head><body>"
        f"<h1>Agent session exporter {html.escape(__version__)}</h1>"
        f"<p><a href='{html.escape(telemetry_path)}'>Metrics</a> &middot; <a href='/healthz'>Health</a></p>"
        "<table><tr><th>source</th><th>provider</th><th>state</th><th>last success</th><th>last result</th></tr>"
        f"{''.join(rows)}</table>"
        f"{f'<h2>Deprecated settings</h2><ul class=deprecated>{deprecated}</ul>' if deprecated else ''}"
        f"{''.join(html_ for *_, html_ in sections) or '<p>No session has ended in error or timeout.</p>'}"
        "</body></html>"
    )
