"""What every source's configuration has, as one typed (pydantic) model; each provider module
subclasses it with its own options, defaults and page limit.

Durations (``30s``, ``10m``, ``24h``, or plain seconds) are one type, ``Duration``.
"""

from __future__ import annotations

import ipaddress
import re
import string
from pathlib import Path
from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema, field_validator, model_validator

_DURATION_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")
_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, None: 1}
DURATION_EXAMPLES = "such as 30s, 10m or 24h"


def to_seconds(value: Any) -> float:
    """Seconds from a number or a string such as ``90``, ``30s``, ``10m``, ``24h``, ``7d``. The error
    never names the value: it may be a key pasted into the wrong line."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str) and (match := _DURATION_PATTERN.match(value)):
        return float(match.group(1)) * _DURATION_UNITS[match.group(2)]
    raise ValueError(f"must be a duration {DURATION_EXAMPLES}")


_DURATION_SCHEMA = {
    "anyOf": [{"type": "number", "minimum": 0}, {"type": "string", "pattern": _DURATION_PATTERN.pattern}],
    "description": f"seconds, or a duration {DURATION_EXAMPLES}",
}
#: A duration in seconds, given as a number or with a unit.
Duration = Annotated[float, BeforeValidator(to_seconds), WithJsonSchema(_DURATION_SCHEMA)]


#: What a source's name (its ``source`` label) may be.
NAME_PATTERN = r"^[A-Za-z0-9_.:-]{1,64}$"

#: The placeholders a template may use; ``project`` is HoneyHive's and empty for the others.
PLACEHOLDERS = ("session_id", "workflow", "source", "project")


#: A template's fixed origin: scheme, host (an ASCII name, punycode for an international one, or an IPv6
#: address in brackets) and optional port, then ``/``, ``?``, ``#`` or the end. Nothing a placeholder
#: gives may reach the host or the port, and the redirect never fails on the host (IDNA, port range).
_FIXED_ORIGIN = re.compile(r"^https?://(?:[A-Za-z0-9_.-]+|\[(?P<ipv6>[0-9A-Fa-f:.]+)\])(?::(?P<port>\d{1,5}))?(?=[/?#]|$)")
FIXED_ORIGIN_RULE = "must start with http:// or https:// and a fixed host (and port), ended by /, ? or # before any placeholder"


def check_fixed_origin(template: str) -> None:
    """ValueError unless ``template`` starts with a fixed ``scheme://host[:port]`` (``_FIXED_ORIGIN``)."""
    match = _FIXED_ORIGIN.match(template)
    if match is None or (match["port"] is not None and not 0 < int(match["port"]) <= 65535):
        raise ValueError(FIXED_ORIGIN_RULE)
    if match["ipv6"] is not None:
        try:
            ipaddress.IPv6Address(match["ipv6"])
        except ValueError:
            raise ValueError(FIXED_ORIGIN_RULE) from None


def template_fields(template: str) -> list[str]:
    """The placeholders ``template`` uses; ValueError for any other, or for a malformed template."""
    names = []
    for _, name, spec, conversion in string.Formatter().parse(template):
        if name is None:
            continue
        if name not in PLACEHOLDERS or spec or conversion:
            raise ValueError(f"unknown placeholder {{{name}}}: use {', '.join('{' + p + '}' for p in PLACEHOLDERS)}")
        names.append(name)
    if "session_id" not in names:
        raise ValueError("must contain {session_id}")
    return names


class StrictModel(BaseModel):
    """Unknown keys are errors; values are checked, never coerced from another type."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, hide_input_in_errors=True)


class BasicAuth(StrictModel):
    username: str
    password: str = Field(repr=False)


class SourceBase(StrictModel):
    """Options every source has. Provider modules subclass it (``provider`` as a literal)."""

    #: Whether the provider's API needs a credential (Syntropic137's has none of its own).
    CREDENTIAL_REQUIRED: ClassVar[bool] = True

    name: str = Field(pattern=NAME_PATTERN, description="unique; the `source` label")
    provider: str
    base_url: str = Field(description="API root, http:// or https://")
    api_key: str | None = Field(None, repr=False, min_length=1)
    api_key_file: str | None = Field(None, description="read the key from this file (a mounted secret)")
    basic_auth: BasicAuth | None = Field(None, repr=False)
    interval: Duration = Field(30.0, ge=1, description="poll period (default: the top-level interval)")
    timeout: Duration = Field(10.0, gt=0, description="per request")
    page_size: int = Field(100, ge=1)
    max_pages: int = Field(1000, ge=1, description="bound on pages per request chain and cycle")
    initial_lookback: Duration = Field(86400.0, ge=0, description="how far back the first cycle reads")
    overlap: Duration = Field(
        60.0,
        ge=0,
        description=(
            "how late a session may be written behind the newest seen: swept once per overlap. A minute where "
            "the list is written as sessions start or end, keyed by that moment (replication lag only)"
        ),
    )
    max_pending_age: Duration = Field(86400.0, gt=0, description="give up on a session pending this long")
    max_pending_checks: int = Field(50, ge=1, description="pending sessions looked up one by one per cycle")
    settle_after: Duration = Field(
        300.0,
        ge=0,
        description=("HoneyHive: a session ends once the exporter sees the same end_time again this long after it first saw it"),
    )
    max_requests_per_second: float | None = Field(None, gt=0)
    max_response_bytes: int = Field(32 * 1024 * 1024, ge=1024)
    max_label_values: int = Field(100, ge=1, description="distinct values per upstream label; the rest: other")
    max_series_per_family: int = Field(
        2000,
        ge=10,
        description=(
            "series per session metric family (a histogram's label set counts once); past it new label sets fold "
            "workflow, then model, then status into other"
        ),
    )
    retries: int = Field(3, ge=0)
    max_requests_per_cycle: int = Field(2000, ge=1, description="a cycle needing more is abandoned")
    cycle_timeout: Duration = Field(300.0, gt=0, description="a cycle running longer is abandoned")
    session_url: str | None = Field(
        None,
        description=(
            "the provider's page of one session, with {session_id} and optionally {workflow}, {source}, {project}; "
            "GET /sessions/<source>/<id> on the exporter redirects there. Default: the vendor's app where known "
            "(HoneyHive, Kapso, when base_url is their cloud API); an empty string turns links off"
        ),
    )

    #: The vendor's cloud API host and the session page of its app, for the ``session_url`` default.
    SESSION_URL_DEFAULT: ClassVar[tuple[str, str] | None] = None

    @field_validator("max_requests_per_second", mode="before")
    @classmethod
    def _number(cls, value: Any) -> Any:
        return float(value) if isinstance(value, int) and not isinstance(value, bool) else value

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not re.match(r"^https?://[^/\s]+", value):
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/")

    @field_validator("session_url")
    @classmethod
    def _session_url(cls, value: str | None) -> str | None:
        if value:
            check_fixed_origin(value)
            template_fields(value)
        return value

    @model_validator(mode="after")
    def _credentials(self) -> SourceBase:
        # Each message names the key, never its value: a path may be a key pasted into the wrong line.
        if self.api_key and self.api_key_file:
            raise ValueError("api_key_file: give api_key or api_key_file, not both")
        if self.basic_auth and (self.api_key or self.api_key_file):
            raise ValueError("basic_auth: give api_key or basic_auth, not both")
        if self.api_key_file:
            try:
                key = Path(self.api_key_file).read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ValueError(f"api_key_file: cannot be read ({exc.strerror or type(exc).__name__})") from None
            if not key:
                raise ValueError("api_key_file: the file is empty")
            object.__setattr__(self, "api_key", key)
        if self.CREDENTIAL_REQUIRED and not self.api_key and not self.basic_auth:
            raise ValueError(f"api_key: required for provider {self.provider} (or api_key_file / basic_auth)")
        return self

    @property
    def deprecated(self) -> str | None:
        """What this source's settings use that is deprecated, and what to set instead: said in the log at
        start and on the landing page (None: nothing)."""
        return None

    @property
    def secrets(self) -> list[str]:
        values = [self.api_key] if self.api_key else []
        if self.basic_auth:
            values.append(self.basic_auth.password)
        return values
