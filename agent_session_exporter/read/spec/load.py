"""Specs in: the built-in ones shipped in the package (``read/spec/builtin/*.yaml``, one per platform)
and a user's (``provider: custom`` with ``spec_file:`` or an inline ``spec:``). Each becomes a
provider class with its source model, as the providers written in Python have."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, Field, PrivateAttr, ValidationError, create_model, field_validator, model_validator

from agent_session_exporter.read.push import PushSource, StreamSource
from agent_session_exporter.read.source import Duration, SourceBase, StrictModel
from agent_session_exporter.read.spec.model import Spec
from agent_session_exporter.read.spec.paging import auth_of
from agent_session_exporter.read.spec.provider import SpecProvider
from agent_session_exporter.yamlfile import LocatedYaml, YamlError, error_lines, load_yaml, rule_of

BUILTIN_DIR = Path(__file__).resolve().parent / "builtin"
_OPTION_TYPES: dict[str, Any] = {"string": str, "integer": int, "duration": Duration, "string_list": tuple[str, ...]}


class SpecError(ValueError):
    """A spec that cannot be used; each line is ``file:line: key: rule``."""


def parse_spec(located: LocatedYaml) -> Spec:
    """A loaded document validated as a spec; SpecError naming file:line and key of every error."""
    if not isinstance(located.data, dict):
        raise SpecError(f"{located.filename}:1: a spec is a mapping")
    try:
        return Spec.model_validate(located.data)
    except ValidationError as exc:
        raise SpecError("\n".join(error_lines(exc.errors(), located))) from None


def load_spec_text(text: str, filename: str) -> Spec:
    try:
        return parse_spec(load_yaml(text, filename))
    except YamlError as exc:
        raise SpecError(str(exc)) from None


def load_spec_file(path: str | Path) -> Spec:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError(f"{path}: cannot be read ({exc.strerror or type(exc).__name__})") from None
    return load_spec_text(text, str(path))


@functools.cache
def builtin_specs() -> dict[str, Spec]:
    """The specs shipped in the package, by provider name."""
    specs = {}
    for path in sorted(BUILTIN_DIR.glob("*.yaml")):
        spec = load_spec_file(path)
        if spec.name != path.stem:
            raise SpecError(f"{path}: name must be the file's name, {path.stem}")
        specs[spec.name] = spec
    return specs


def option_fields(spec: Spec) -> tuple[dict[str, Any], dict[str, Any]]:
    """The spec's options as pydantic fields, and their validators (the checks of a list)."""
    fields: dict[str, Any] = {}
    validators = {}
    for name, option in spec.options.items():
        kind = _OPTION_TYPES[option.type]
        bounds: dict[str, Any] = {"ge": option.minimum} if option.minimum is not None else {}
        if option.type == "string_list":
            bounds = {"min_length": 1}
            validators[f"_list_{name}"] = field_validator(name, mode="before")(_string_list(option.item))
        optional = option.default is None
        fields[name] = (kind | None if optional else kind, Field(option.default, description=option.description, **bounds))
    return fields, validators


def source_model(spec: Spec) -> type[SourceBase]:
    """A built-in spec's source model: the options every source has, its page size, its own options;
    those of a source that takes pushes where the spec declares ``pushes`` (webhooks, or a stream)."""
    options, validators = option_fields(spec)
    fields: dict[str, Any] = {
        "provider": (Literal[spec.name], ...),
        "page_size": (int, Field(spec.page_size.default, ge=1, le=spec.page_size.max)),
        **options,
    }
    if spec.incremental.overlap is not None:
        fields["overlap"] = (
            Duration,
            Field(spec.incremental.overlap, ge=0, description=SourceBase.model_fields["overlap"].description),
        )
    base: type[SourceBase] = (
        SourceBase if spec.pushes is None else PushSource if spec.pushes.kind == "webhook" else StreamSource
    )  # its webhook options, or its stream's
    model: type[SourceBase] = create_model(
        f"{spec.name.title().replace('-', '').replace('_', '')}Source", __base__=base, __validators__=validators, **fields
    )
    model.CREDENTIAL_REQUIRED = spec.auth.required
    if spec.session_url is not None:
        model.SESSION_URL_DEFAULT = (spec.session_url.api_host, spec.session_url.template)
    return model


def options_model(spec: Spec) -> type[BaseModel]:
    """A user spec's ``options:`` mapping, checked as a built-in spec's options are."""
    fields, validators = option_fields(spec)
    return create_model(f"{spec.name}Options", __config__=StrictModel.model_config, __validators__=validators, **fields)


def _string_list(item: str) -> Any:
    """A list option's check: non-empty strings, each once (trimmed)."""

    def check(cls: Any, value: Any) -> Any:
        if value is None:
            return None
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            raise ValueError(f"must be a list of {item}s")
        if len(set(value)) != len(value):
            raise ValueError(f"duplicate {item}")
        return tuple(v.strip() for v in value)

    return classmethod(check)


def spec_provider_class(spec: Spec, config: type[SourceBase] | None = None) -> type[SpecProvider]:
    """The provider class of ``spec`` (its source model built unless given)."""
    attributes = {
        "SPEC": spec,
        "Config": config or source_model(spec),
        "AUTH": auth_of(spec),
        "STATUSES": spec.status_table,
        "FIGURES": spec.figures,
        "PENDING_RECHECK": "lookup" if spec.lookup is not None else "window",
        "__doc__": spec.description or f"{spec.name}: a declared provider",
    }
    return type(f"{spec.name.title()}SpecProvider", (SpecProvider,), attributes)


class CustomSource(SourceBase):
    """A platform declared by the user: its spec in a file (``spec_file``) or inline (``spec``); the spec's
    own options under ``options``. The ``provider`` label becomes the spec's ``name``."""

    CREDENTIAL_REQUIRED: ClassVar[bool] = False  # the spec's auth.required decides, once it is read
    provider: Literal["custom"]
    spec_file: str | None = Field(None, description="custom: the provider spec's YAML file")
    spec: dict[str, Any] | None = Field(None, description="custom: the provider spec, inline")
    options: dict[str, Any] = Field(default_factory=dict, description="custom: values of the spec's options")
    _provider_class: type[SpecProvider] | None = PrivateAttr(None)

    @model_validator(mode="after")
    def _read_spec(self) -> CustomSource:
        if (self.spec_file is None) == (self.spec is None):
            raise ValueError("spec_file: give spec_file or spec, one of them")
        if self.spec_file is not None:
            spec = load_spec_file(self.spec_file)
        else:
            spec = parse_spec(LocatedYaml(self.spec, "spec (inline)"))
        if spec.name in builtin_specs() or spec.name in _python_provider_names():
            raise ValueError(f"spec: name {spec.name} is a built-in provider's; choose another")
        if spec.pushes is not None:
            raise ValueError("spec: pushes are taken by built-in specs only, for now")
        unknown = set(self.options) - set(spec.options)
        if unknown:
            raise ValueError(
                f"options: unknown option {sorted(unknown)[0]} (the spec declares {', '.join(spec.options) or 'none'})"
            )
        try:
            values = options_model(spec).model_validate(self.options)
        except ValidationError as exc:
            error = exc.errors()[0]
            raise ValueError(f"options.{'.'.join(str(p) for p in error['loc'])}: {rule_of(error)}") from None
        object.__setattr__(self, "options", values.model_dump())
        if spec.auth.required and not self.api_key and not self.basic_auth:
            raise ValueError(f"api_key: required by spec {spec.name} (or api_key_file / basic_auth)")
        if "page_size" not in self.model_fields_set:
            object.__setattr__(self, "page_size", spec.page_size.default)
        elif self.page_size > spec.page_size.max:
            raise ValueError(f"page_size: at most {spec.page_size.max} for spec {spec.name}")
        object.__setattr__(self, "provider", spec.name)
        self._provider_class = spec_provider_class(spec, type(self))
        return self

    @property
    def provider_class(self) -> type[SpecProvider]:
        assert self._provider_class is not None
        return self._provider_class


def _python_provider_names() -> set[str]:
    from agent_session_exporter.read.providers import PROVIDER_CLASSES  # the registry imports this module

    return set(PROVIDER_CLASSES)


def spec_schema_text() -> str:
    """The spec language's JSON Schema (``--spec.schema``)."""
    schema = Spec.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "agent-session-exporter provider spec"
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"
