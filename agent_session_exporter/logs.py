"""Logging: one structured, redacting pipeline for the exporter's lines and every library's.

Lines are JSON or logfmt; both begin with ``time``, ``level`` and ``msg``. Known secrets (API keys,
passwords) and credentials in HTTP headers are replaced by ``[REDACTED]`` in every value, whether
the line comes from structlog or from a standard-library logger such as aiohttp's.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from typing import Any, Iterable, MutableMapping

import structlog

REDACTED = "[REDACTED]"
FIRST_KEYS = ("time", "level", "msg")
#: Credentials a client or an upstream may put in a header that a library echoes (a malformed
#: request's traceback, for one): the scheme is kept, the credential is not.
_HEADER_CREDENTIALS = re.compile(
    r"(?i)((?:proxy-)?authorization[\"']?\s*[:=]\s*[\"']?(?:basic|bearer|digest|token)?\s*|"
    r"x-api-key[\"']?\s*[:=]\s*[\"']?)[^\s\"',;}]+"
)


class SecretRedactor:
    """A structlog processor that replaces every known secret in every value of a log line."""

    def __init__(self) -> None:
        self.secrets: tuple[str, ...] = ()

    def set_secrets(self, secrets: Iterable[str]) -> None:
        # Longest first, so a secret that contains another is replaced whole.
        self.secrets = tuple(sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True))

    def redact(self, value: Any) -> Any:
        if isinstance(value, str):
            for secret in self.secrets:
                if secret in value:
                    value = value.replace(secret, REDACTED)
            if "uthorization" in value or "UTHORIZATION" in value or "pi-key" in value or "PI-KEY" in value:
                value = _HEADER_CREDENTIALS.sub(lambda m: m.group(1) + REDACTED, value)
            return value
        if isinstance(value, dict):
            return {k: self.redact(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return type(value)(self.redact(v) for v in value)
        if isinstance(value, BaseException):
            return self.redact(f"{type(value).__name__}: {value}")
        return value

    def __call__(self, logger: Any, method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        return {key: self.redact(value) for key, value in event_dict.items()}


redactor = SecretRedactor()


def _first_keys(logger: Any, method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """``time``, ``level`` and ``msg`` first, the rest as they came."""
    ordered = {key: event_dict[key] for key in FIRST_KEYS if key in event_dict}
    ordered.update((k, v) for k, v in event_dict.items() if k not in ordered)
    return ordered


#: What a logfmt line cannot carry as it is (structlog escapes ``\n`` itself): shown escaped, so an
#: upstream id holding ``\r`` cannot overwrite a terminal's line or forge one.
_LOGFMT_UNSAFE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\ud800-\udfff]")


def _flatten_for_logfmt(logger: Any, method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Lists, dicts and other objects as one value a logfmt parser reads whole (compact JSON or text);
    control characters and lone surrogates escaped."""
    out: dict[str, Any] = {}
    for key, value in event_dict.items():
        if isinstance(value, (list, tuple, dict)):
            value = json.dumps(value, separators=(",", ":"), default=str)
        elif value is not None and not isinstance(value, (str, int, float, bool)):
            value = str(value)
        if isinstance(value, str):
            value = _LOGFMT_UNSAFE.sub(
                lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x100 else f"\\u{ord(m.group()):04x}", value
            )
        out[key] = value
    return out


def _drop_library_noise(logger: Any, method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    event_dict.pop("_record", None)
    event_dict.pop("_from_structlog", None)
    return event_dict


def configure_logging(level: str = "info", json: bool | None = None, stream: Any = None) -> None:
    """Route structlog and the standard library (aiohttp, asyncio) through one redacting pipeline."""
    stream = stream or sys.stderr
    if json is None:
        json = not (hasattr(stream, "isatty") and stream.isatty())
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="time"),
        structlog.processors.format_exc_info,
        structlog.processors.EventRenamer("msg"),
        redactor,
        _first_keys,
    ]
    renderer: list[Any] = (
        [structlog.processors.JSONRenderer()] if json else [_flatten_for_logfmt, structlog.processors.LogfmtRenderer()]
    )
    numeric_level = logging.getLevelName(level.upper())
    structlog.configure(
        processors=[*shared, *renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric_level),
        logger_factory=structlog.PrintLoggerFactory(stream),
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared[:-3]],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                _drop_library_noise,
                structlog.processors.EventRenamer("msg"),
                redactor,
                _first_keys,
                *renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric_level)
