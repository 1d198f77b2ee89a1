"""``--healthcheck``: ask the running exporter's /healthz, at the address it noted when it started
listening (a container HEALTHCHECK that follows the configured address)."""

from __future__ import annotations

import os
import ssl
import sys
import tempfile
import urllib.request
from pathlib import Path

import structlog

from agent_session_exporter.config import DEFAULT_LISTEN

log = structlog.get_logger()


def health_url_file() -> Path:
    return Path(tempfile.gettempdir()) / f"agent-session-exporter-{os.getuid()}.healthz"


def note_health_url(url: str) -> None:
    """Where ``--healthcheck`` will look: the address this exporter really listens on."""
    try:
        health_url_file().write_text(url.replace("://localhost:", "://127.0.0.1:"))
    except OSError as exc:
        log.warning("cannot note the health URL for --healthcheck", error=exc.strerror)


def healthcheck() -> int:
    """0 when the exporter started by this user answers /healthz with 200, else 1."""
    try:
        url = health_url_file().read_text().strip()
    except OSError:
        url = "http://127.0.0.1:" + DEFAULT_LISTEN.rsplit(":", 1)[1] + "/healthz"
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE  # a probe of ourselves, not a trust decision
    try:
        with urllib.request.urlopen(url, timeout=4, context=context if url.startswith("https") else None) as response:
            return 0 if response.status == 200 else 1
    except (OSError, ValueError) as exc:
        print(f"unhealthy: {url}: {exc}", file=sys.stderr)
        return 1
