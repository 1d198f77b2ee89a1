"""YAML configuration: ``${VAR}`` expansion, validation into dataclasses, errors naming the key."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

PROVIDERS = ("whatabot", "dify", "syntropic137", "honeyhive", "kapso")
DEFAULT_LISTEN = "0.0.0.0:9817"
DEFAULT_BUCKETS = (1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)
_ENV_PATTERN = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_DURATION_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")
_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, None: 1}
_NAME_PATTERN = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


class ConfigError(ValueError):
    """Invalid configuration; the message starts with the offending key."""


@dataclass(frozen=True)
class BasicAuth:
    username: str
    password: str = field(repr=False)


@dataclass(frozen=True)
class SourceConfig:
    name: str
    provider: str
    base_url: str
    api_key: str | None = field(default=None, repr=False)
    basic_auth: BasicAuth | None = field(default=None, repr=False)
    interval: float = 30.0
    timeout: float = 10.0
    page_size: int = 100
    max_pages: int = 1000
    initial_lookback: float = 86400.0
    overlap: float = 120.0
    max_pending_age: float = 86400.0
    max_pending_checks: int = 50
    max_requests_per_cycle: int = 2000
    cycle_timeout: float = 300.0
    settle_after: float = 300.0
    max_requests_per_second: float | None = None
    max_response_bytes: int = 32 * 1024 * 1024
    max_label_values: int = 100
    retries: int = 3
    # provider-specific
    project: str | None = None
    api: str = "sessions"
    workflow_ids: tuple[str, ...] = ()
    workspace_id: str | None = None
    workflow_id: str | None = None

    @property
    def secrets(self) -> list[str]:
        values = [self.api_key] if self.api_key else []
        if self.basic_auth:
            values.append(self.basic_auth.password)
        return values


@dataclass(frozen=True)
class Config:
    sources: tuple[SourceConfig, ...]
    listen: str = DEFAULT_LISTEN
    interval: float = 30.0
    state_path: str | None = None
    duration_buckets: tuple[float, ...] = DEFAULT_BUCKETS

    @property
    def secrets(self) -> list[str]:
        return [secret for source in self.sources for secret in source.secrets]


_PAGE_LIMITS = {"whatabot": 100, "dify": 100, "syntropic137": 200, "honeyhive": 10000, "kapso": 100}
_SOURCE_KEYS = {
    "name", "provider", "base_url", "api_key", "api_key_file", "basic_auth", "interval", "timeout",
    "page_size", "max_pages", "initial_lookback", "overlap", "max_pending_age", "max_pending_checks", "settle_after",
    "max_requests_per_cycle", "cycle_timeout",
    "max_requests_per_second", "max_response_bytes", "max_label_values", "retries",
    "project", "api", "workflow_ids", "workspace_id", "workflow_id",
}
_HONEYHIVE_APIS = {"sessions": 10000, "events": 7500}  # api -> page_size limit
_TOP_KEYS = {"listen", "interval", "state_path", "duration_buckets", "sources"}


def load_config(path: str | os.PathLike[str], environ: dict[str, str] | None = None) -> Config:
    """Read, expand and validate a config file."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc.strerror}") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {yaml_problem(exc)}") from None
    return parse_config(raw, os.environ if environ is None else environ)


def yaml_problem(exc: yaml.YAMLError) -> str:
    """What is wrong and where, never the text around it: that line may hold a key or a password."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    problem = getattr(exc, "problem", None) or getattr(exc, "context", None) or type(exc).__name__
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    return f"{where}{problem}"


def parse_config(raw: Any, environ: dict[str, str] | os._Environ[str]) -> Config:
    if not isinstance(raw, dict):
        raise ConfigError("(top level): must be a mapping")
    raw = _expand(raw, environ, "")
    _reject_unknown(raw, _TOP_KEYS, "")
    interval = parse_duration(raw.get("interval", 30), "interval", positive=True)
    buckets = raw.get("duration_buckets", list(DEFAULT_BUCKETS))
    if (not isinstance(buckets, list) or not buckets
            or not all(isinstance(b, (int, float)) and not isinstance(b, bool) and b > 0 for b in buckets)
            or sorted(set(buckets)) != buckets):
        raise ConfigError("duration_buckets: must be a strictly increasing list of positive numbers")
    sources_raw = raw.get("sources")
    if not isinstance(sources_raw, list) or not sources_raw:
        raise ConfigError("sources: must be a non-empty list")
    sources = tuple(_parse_source(item, f"sources[{i}]", interval) for i, item in enumerate(sources_raw))
    seen: set[str] = set()
    for i, source in enumerate(sources):
        if source.name in seen:
            raise ConfigError(f"sources[{i}].name: duplicate source name {source.name!r}")
        seen.add(source.name)
    listen = raw.get("listen", DEFAULT_LISTEN)
    parse_listen(listen, "listen")
    state_path = raw.get("state_path")
    if state_path is not None and not isinstance(state_path, str):
        raise ConfigError("state_path: must be a string")
    return Config(sources=sources, listen=listen, interval=interval, state_path=state_path,
                  duration_buckets=tuple(float(b) for b in buckets))


def parse_duration(value: Any, key: str, *, positive: bool = False) -> float:
    """Seconds from a number or a string such as ``90``, ``30s``, ``10m``, ``24h``, ``7d``."""
    if isinstance(value, bool):
        raise ConfigError(f"{key}: must be a duration such as 30s, 10m or 24h")
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str) and (match := _DURATION_PATTERN.match(value)):
        seconds = float(match.group(1)) * _DURATION_UNITS[match.group(2)]
    else:
        raise ConfigError(f"{key}: must be a duration such as 30s, 10m or 24h, got {value!r}")
    if seconds < 0 or (positive and seconds == 0):
        raise ConfigError(f"{key}: must be {'positive' if positive else 'zero or more'}")
    return seconds


def parse_listen(value: Any, key: str) -> tuple[str, int]:
    if not isinstance(value, str) or ":" not in value:
        raise ConfigError(f"{key}: must be HOST:PORT, got {value!r}")
    host, _, port_text = value.rpartition(":")
    host = host.strip("[]")
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ConfigError(f"{key}: port must be a number from 0 to 65535, got {port_text!r}")
    return host or "0.0.0.0", int(port_text)


def _expand(value: Any, environ: Any, key: str) -> Any:
    """Replace ``${VAR}`` in every string value; a missing variable is an error naming the key."""
    if isinstance(value, dict):
        return {k: _expand(v, environ, f"{key}.{k}" if key else str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, environ, f"{key}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, str):
        def substitute(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in environ:
                raise ConfigError(f"{key}: environment variable {name} is not set")
            return environ[name]
        return _ENV_PATTERN.sub(substitute, value)
    return value


def _reject_unknown(raw: dict[str, Any], allowed: set[str], prefix: str) -> None:
    for key in raw:
        if key not in allowed:
            raise ConfigError(f"{prefix}{key}: unknown key")


def _parse_source(raw: Any, key: str, default_interval: float) -> SourceConfig:
    if not isinstance(raw, dict):
        raise ConfigError(f"{key}: must be a mapping")
    _reject_unknown(raw, _SOURCE_KEYS, f"{key}.")

    def string(name: str, required: bool = False) -> str | None:
        value = raw.get(name)
        if value is None:
            if required:
                raise ConfigError(f"{key}.{name}: required")
            return None
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(f"{key}.{name}: must be a non-empty string")
        return value.strip()

    def number(name: str, default: float, cast: type = float, minimum: float = 0) -> Any:
        value = raw.get(name, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < minimum:
            raise ConfigError(f"{key}.{name}: must be a number of at least {minimum}")
        if cast is int and value != int(value):
            raise ConfigError(f"{key}.{name}: must be a whole number")
        return cast(value)

    name = string("name", required=True)
    assert name is not None
    if not _NAME_PATTERN.match(name):
        raise ConfigError(f"{key}.name: use 1-64 letters, digits, '_', '-', '.', ':'")
    provider = string("provider", required=True)
    if provider not in PROVIDERS:
        raise ConfigError(f"{key}.provider: must be one of {', '.join(PROVIDERS)}, got {provider!r}")
    base_url = string("base_url", required=True)
    assert base_url is not None
    if not base_url.startswith(("http://", "https://")):
        raise ConfigError(f"{key}.base_url: must start with http:// or https://")

    api_key = string("api_key")
    key_file = string("api_key_file")
    if api_key and key_file:
        raise ConfigError(f"{key}.api_key_file: give api_key or api_key_file, not both")
    if key_file:
        try:
            api_key = Path(key_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"{key}.api_key_file: cannot read {key_file}: {exc.strerror}") from None
        if not api_key:
            raise ConfigError(f"{key}.api_key_file: {key_file} is empty")
    basic_auth = None
    if raw.get("basic_auth") is not None:
        auth = raw["basic_auth"]
        if (not isinstance(auth, dict) or set(auth) != {"username", "password"}
                or not all(isinstance(v, str) for v in auth.values())):
            raise ConfigError(f"{key}.basic_auth: must be a mapping with username and password strings")
        if api_key:
            raise ConfigError(f"{key}.basic_auth: give api_key or basic_auth, not both")
        basic_auth = BasicAuth(auth["username"], auth["password"])
    if provider != "syntropic137" and not api_key and not basic_auth:
        raise ConfigError(f"{key}.api_key: required for provider {provider} (or api_key_file / basic_auth)")

    api = string("api") or "sessions"
    if raw.get("api") is not None and provider != "honeyhive":
        raise ConfigError(f"{key}.api: only for provider honeyhive")
    if api not in _HONEYHIVE_APIS:
        raise ConfigError(f"{key}.api: must be one of {', '.join(_HONEYHIVE_APIS)}, got {api!r}")
    page_limit = _HONEYHIVE_APIS[api] if provider == "honeyhive" else _PAGE_LIMITS[provider]
    page_size = number("page_size", 1000 if provider == "honeyhive" else page_limit, int, 1)
    if page_size > page_limit:
        raise ConfigError(f"{key}.page_size: {provider} allows at most {page_limit}")
    workflow_ids = raw.get("workflow_ids") or []
    if provider == "kapso":
        if (not isinstance(workflow_ids, list) or not workflow_ids
                or not all(isinstance(w, str) and w.strip() for w in workflow_ids)):
            raise ConfigError(f"{key}.workflow_ids: required for provider kapso, a list of workflow ids")
        if len(set(workflow_ids)) != len(workflow_ids):
            raise ConfigError(f"{key}.workflow_ids: duplicate workflow id")
    elif workflow_ids:
        raise ConfigError(f"{key}.workflow_ids: only for provider kapso")
    project = string("project", required=provider == "honeyhive")
    for option, owner in (("project", "honeyhive"), ("workspace_id", "whatabot"), ("workflow_id", "syntropic137")):
        if raw.get(option) is not None and provider != owner:
            raise ConfigError(f"{key}.{option}: only for provider {owner}")
    rate = raw.get("max_requests_per_second")
    if rate is not None and (isinstance(rate, bool) or not isinstance(rate, (int, float)) or rate <= 0):
        raise ConfigError(f"{key}.max_requests_per_second: must be a positive number")

    return SourceConfig(
        name=name, provider=provider, base_url=base_url.rstrip("/"), api_key=api_key, basic_auth=basic_auth,
        interval=parse_duration(raw.get("interval", default_interval), f"{key}.interval", positive=True),
        timeout=parse_duration(raw.get("timeout", 10), f"{key}.timeout", positive=True),
        page_size=page_size,
        max_pages=number("max_pages", 1000, int, 1),
        initial_lookback=parse_duration(raw.get("initial_lookback", "24h"), f"{key}.initial_lookback"),
        overlap=parse_duration(raw.get("overlap", "2m"), f"{key}.overlap"),
        max_pending_age=parse_duration(raw.get("max_pending_age", "24h"), f"{key}.max_pending_age", positive=True),
        max_pending_checks=number("max_pending_checks", 50, int, 1),
        max_requests_per_cycle=number("max_requests_per_cycle", 2000, int, 1),
        cycle_timeout=parse_duration(raw.get("cycle_timeout", "5m"), f"{key}.cycle_timeout", positive=True),
        settle_after=parse_duration(raw.get("settle_after", 300), f"{key}.settle_after"),
        max_requests_per_second=float(rate) if rate is not None else None,
        max_response_bytes=number("max_response_bytes", 32 * 1024 * 1024, int, 1024),
        max_label_values=number("max_label_values", 100, int, 1),
        retries=number("retries", 3, int, 0),
        project=project, api=api, workflow_ids=tuple(w.strip() for w in workflow_ids),
        workspace_id=string("workspace_id"), workflow_id=string("workflow_id"),
    )
