"""The configuration: YAML with ``${VAR}`` expansion, validated into one typed model (pydantic).

Each provider module declares its own source model; the ``sources`` list is a union of them told
apart by ``provider``. Every error is reported in one run, one line each, in one format: where
(``source 'NAME'``, or ``sources[i]`` for an entry without a valid name, or nothing at the top level),
the key path, the rule (``source 'wb': page_size: ...``); never a value: a secret may have been pasted
into the wrong key.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Mapping, Union

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError

from agent_session_exporter.read.providers import CUSTOM, PROVIDER_CLASSES, CustomSource
from agent_session_exporter.read.source import NAME_PATTERN, BasicAuth, Duration, SourceBase, StrictModel, to_seconds
from agent_session_exporter.yamlfile import LocatedYaml, YamlError, data_path, load_yaml, rule_of

PROVIDERS = (*PROVIDER_CLASSES, CUSTOM)
DEFAULT_LISTEN = "0.0.0.0:9817"
DEFAULT_BUCKETS = (1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)
_ENV_PATTERN = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")

#: A configured source: the model of its provider.
SourceConfig = SourceBase
if TYPE_CHECKING:  # a union of the providers' models, told apart by ``provider``, is a SourceBase to mypy
    AnySource = SourceBase
else:
    AnySource = Annotated[
        Union[(*(cls.Config for cls in PROVIDER_CLASSES.values()), CustomSource)], Field(discriminator="provider")
    ]

__all__ = ["BasicAuth", "Config", "ConfigError", "SourceConfig", "load_config", "parse_config", "parse_listen", "config_schema"]


class ConfigError(ValueError):
    """Invalid configuration; each line names the source (or top-level key) and the key."""


class Config(StrictModel):
    listen: str = Field(DEFAULT_LISTEN, description="HOST:PORT to serve /metrics on")
    interval: Duration = Field(30.0, ge=1, description="default poll period of every source")
    state_path: str | None = Field(None, description="SQLite file holding windows, pending sessions and totals")
    duration_buckets: tuple[float, ...] = Field(
        DEFAULT_BUCKETS, min_length=1, description="histogram bucket bounds, seconds, strictly increasing"
    )
    sources: tuple[AnySource, ...] = Field(description="one entry per polled API (an app, a project, a workflow set)")

    @model_validator(mode="before")
    @classmethod
    def _source_interval_defaults_to_top_level(cls, raw: Any) -> Any:
        if isinstance(raw, dict) and isinstance(raw.get("sources"), list) and _is_duration(raw.get("interval")):
            raw = {**raw, "sources": [{"interval": raw["interval"], **s} if isinstance(s, dict) else s for s in raw["sources"]]}
        return raw

    @field_validator("sources", mode="before")
    @classmethod
    def _sources(cls, value: Any) -> Any:
        if not isinstance(value, list) or not value:
            raise ValueError("must be a non-empty list")
        names = [entry.get("name") if isinstance(entry, dict) else None for entry in value]
        for index, name in enumerate(names):
            if isinstance(name, str) and name in names[:index]:
                # Located by _describe at this entry's name (the index is in the context).
                raise PydanticCustomError("duplicate_source_name", "must be unique", {"index": index})
        return tuple(value)

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        _listen_parts(value)
        return value

    @field_validator("duration_buckets", mode="before")
    @classmethod
    def _buckets(cls, value: Any) -> Any:
        if (
            not isinstance(value, (list, tuple))
            or not value
            or not all(isinstance(b, (int, float)) and not isinstance(b, bool) and b > 0 for b in value)
            or sorted(set(value)) != list(value)
        ):
            raise ValueError("must be a strictly increasing list of positive numbers")
        return tuple(float(b) for b in value)

    @property
    def secrets(self) -> list[str]:
        return [secret for source in self.sources for secret in source.secrets]


def load_config(path: str | os.PathLike[str], environ: dict[str, str] | None = None) -> Config:
    """Read, expand and validate a config file; each error line starts with ``file:line:``."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc.strerror}") from None
    try:
        located = load_yaml(text, str(path))
    except YamlError as exc:
        raise ConfigError(f"not valid YAML: {exc}") from None
    raw = _beside(located.data, Path(path).parent)
    return parse_config(raw, os.environ if environ is None else environ, located)


def _beside(raw: Any, folder: Path) -> Any:
    """A source's relative ``spec_file`` is read beside the config file, wherever the exporter runs."""
    if isinstance(raw, dict) and isinstance(raw.get("sources"), list):
        raw["sources"] = [
            {**entry, "spec_file": str(folder / entry["spec_file"])}
            if isinstance(entry, dict) and isinstance(entry.get("spec_file"), str) and not Path(entry["spec_file"]).is_absolute()
            else entry
            for entry in raw["sources"]
        ]
    return raw


def parse_config(raw: Any, environ: dict[str, str] | os._Environ[str], located: LocatedYaml | None = None) -> Config:
    """Validate a loaded config; ``located``: the file it came from, whose lines the errors name."""
    if not isinstance(raw, dict):
        raise ConfigError("(top level): must be a mapping")
    errors: list[tuple[tuple[str | int, ...], str]] = []
    raw = _expand(raw, environ, (), errors)
    problems = list(errors)
    try:
        config = Config.model_validate(raw)
    except ValidationError as exc:
        # Every error in one run; a key whose variable is unset is reported for that alone.
        unset = {loc for loc, _ in errors}
        problems += [_describe(error) for error in exc.errors() if _under_provider(tuple(error["loc"])) not in unset]
    if problems:
        raise ConfigError("\n".join(_where(located, raw, loc) + _line(loc, message, raw) for loc, message in problems))
    return config


def _where(located: LocatedYaml | None, raw: Any, loc: tuple[str | int, ...]) -> str:
    """``file:line: `` of a key path, where the config came from a file."""
    return "" if located is None else f"{located.where(data_path(raw, loc))}: "


def _under_provider(loc: tuple[str | int, ...]) -> tuple[str | int, ...]:
    """A source's key as the expansion names it (pydantic puts the union's tag after the index)."""
    return loc[:2] + loc[3:] if len(loc) > 2 and loc[0] == "sources" and loc[2] in PROVIDERS else loc


def check_machine(config: Config) -> list[str]:
    """What the config needs of this machine, checked by ``--check-config`` and at start (never by
    ``parse_config``: a config is also validated for another machine, a Kubernetes pod's, say)."""
    problems = []
    if config.state_path and not Path(config.state_path).resolve().parent.is_dir():
        problems.append(
            "state_path: its directory does not exist (it is never created: a typo would otherwise start counting anew)"
        )
    return problems


def _describe(error: Any) -> tuple[tuple[str | int, ...], str]:
    """One error's key path and rule (written ``source 'NAME': key: rule`` by ``_line``). Pydantic's
    message is the rule: with ``hide_input_in_errors`` and the replacements here, none holds the value."""
    loc = list(error["loc"])
    message = rule_of(error)
    if error["type"] == "union_tag_invalid":  # its message quotes the tag given
        message = f"must be one of {', '.join(PROVIDERS)}"
        loc.append("provider")
    elif error["type"] == "union_tag_not_found":
        message = "required"
        loc.append("provider")
    elif error["type"] == "duplicate_source_name":
        loc = ["sources", error["ctx"]["index"], "name"]
    elif error["type"] == "extra_forbidden" and loc[-1] == "push" and len(loc) == 4:
        message = (
            f"this provider streams no activity: push: sse is for "
            f"{', '.join(n for n, c in PROVIDER_CLASSES.items() if 'push' in c.Config.model_fields)} only"
        )
    if len(loc) > 2 and loc[0] == "sources" and isinstance(loc[1], int) and loc[2] in PROVIDERS:
        del loc[2]  # the union's tag; a check across keys (a model validator) names its key itself
    return tuple(loc), message


def _line(loc: tuple[str | int, ...], message: str, raw: dict[str, Any]) -> str:
    """The one format of an error: where, key path, rule. A source is named by its ``name`` where that
    is a valid name, else by its index (an invalid name may be a value pasted into the wrong key)."""
    where = ""
    if len(loc) >= 2 and loc[0] == "sources" and isinstance(loc[1], int):
        sources = raw.get("sources")
        entry = sources[loc[1]] if isinstance(sources, list) and loc[1] < len(sources) else None
        name = entry.get("name") if isinstance(entry, dict) else None
        valid = isinstance(name, str) and re.match(NAME_PATTERN, name)
        where = f"source {name!r}: " if valid else f"sources[{loc[1]}]: "
        loc = loc[2:]
    path = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc).removeprefix(".")
    if not path:
        return f"{where}{message}" if where else f"(top level): {message}"
    return f"{where}{path}: {message}"


def config_schema() -> dict[str, Any]:
    """The config file's JSON Schema, for editors (``--config.schema``)."""
    schema = Config.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "agent-session-exporter configuration"
    return schema


def config_schema_text() -> str:
    return json.dumps(config_schema(), indent=2, sort_keys=True) + "\n"


def _is_duration(value: Any) -> bool:
    try:
        to_seconds(value)
    except ValueError:
        return False
    return True


def parse_duration(value: Any, key: str) -> float:
    """Seconds from ``90``, ``30s``, ``10m``, ``24h`` or ``7d``; ConfigError naming ``key`` otherwise."""
    try:
        return to_seconds(value)
    except ValueError as exc:
        raise ConfigError(f"{key}: {exc}") from None


def parse_listen(value: Any, key: str) -> tuple[str, int]:
    """HOST and PORT of ``HOST:PORT``; ConfigError naming ``key`` (and never the value) otherwise."""
    try:
        return _listen_parts(value)
    except ValueError as exc:
        raise ConfigError(f"{key}: {exc}") from None


def _listen_parts(value: Any) -> tuple[str, int]:
    if not isinstance(value, str) or ":" not in value:
        raise ValueError("must be HOST:PORT")
    host, _, port_text = value.rpartition(":")
    host = host.strip("[]")
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError("port must be a number from 0 to 65535")
    return host or "0.0.0.0", int(port_text)


def _expand(
    value: Any, environ: Mapping[str, str], loc: tuple[str | int, ...], errors: list[tuple[tuple[str | int, ...], str]]
) -> Any:
    """Replace ``${VAR}`` in every string value; each missing variable is an error at its key."""
    if isinstance(value, dict):
        return {k: _expand(v, environ, (*loc, str(k)), errors) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, environ, (*loc, i), errors) for i, v in enumerate(value)]
    if isinstance(value, str):

        def substitute(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in environ:
                errors.append((loc, f"environment variable {name} is not set"))
                return match.group(0)  # left as written, so the other keys are still checked
            return environ[name]

        return _ENV_PATTERN.sub(substitute, value)
    return value
