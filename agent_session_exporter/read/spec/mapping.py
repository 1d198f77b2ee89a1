"""The spec language's meaning parts: where each session field comes from, and what each status means."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, WithJsonSchema, field_validator, model_validator

from agent_session_exporter.model import Outcome
from agent_session_exporter.read.spec.basics import Paths, SpecModel, as_paths, check_path


class FieldSpec(SpecModel):
    """Where one session field comes from, and how it is written."""

    path: Paths
    format: Literal["auto", "iso8601", "unix", "milliseconds", "number", "decimal_string"] = Field(
        "auto",
        description="times: auto (ISO 8601, or Unix seconds/ms/µs/ns told by magnitude), iso8601, "
        "unix, milliseconds; figures: number, decimal_string",
    )
    scale: float = Field(1.0, gt=0, description="a figure's unit: 0.01 for cents, 0.001 for milliseconds")
    required: bool = False

    @field_validator("path")
    @classmethod
    def _paths(cls, value: Paths) -> Paths:
        for path in as_paths(value):
            check_path(path)
        return value


def _field(value: Any) -> Any:
    """A field given as a bare path is that path with the defaults."""
    return {"path": value} if isinstance(value, (str, list)) else value


_FIELD_SCHEMA = {"anyOf": [FieldSpec.model_json_schema(), {"type": "string"}, {"type": "array", "items": {"type": "string"}}]}
#: A field: its FieldSpec, or just its path (or alternatives) with the defaults.
Declared = Annotated[FieldSpec, BeforeValidator(_field), WithJsonSchema(_FIELD_SCHEMA)]


class Fields(SpecModel):
    """Each session field's source. ``duration``: seconds as the API gives them (without it, from
    ``started_at`` to ``finished_at``); ``key_time``: the time the list is ordered and filtered by."""

    id: Declared
    status: Declared | None = None
    started_at: Declared | None = None
    finished_at: Declared | None = None
    key_time: Literal["started_at", "finished_at"] | Declared = Field(
        "started_at", description=("started_at or finished_at, or a field of its own (such as a creation time)")
    )
    duration: Declared | None = None
    error_text: Declared | None = None
    warnings: Declared | None = None
    tokens: dict[str, Declared] = Field(default_factory=dict, description="token kind: its field")
    cost: Declared | None = Field(None, description="US dollars (a scale for other units)")
    model: Declared | None = None
    workflow_id: Declared | None = None
    workflow_name: Declared | None = None

    @property
    def key_name(self) -> str:
        """The key time's name, as a log line says it."""
        return self.key_time if isinstance(self.key_time, str) else as_paths(self.key_time.path)[0]

    @model_validator(mode="after")
    def _key_time(self) -> Fields:
        if isinstance(self.key_time, str) and getattr(self, self.key_time) is None:
            raise ValueError(f"key_time: {self.key_time} must be declared")
        return self


class OutcomeRule(SpecModel):
    """A final status whose outcome depends on a second field: the first rule that matches decides."""

    field: Paths
    in_: list[str] | None = Field(None, alias="in", description="the field's value is one of these")
    matches: str | None = Field(None, description="a regular expression the field's text matches (search)")
    present: bool | None = Field(None, description="true: the field has a value; false: it has none")
    outcome: Outcome

    @model_validator(mode="after")
    def _one_test(self) -> OutcomeRule:
        if sum(test is not None for test in (self.in_, self.matches, self.present)) != 1:
            raise ValueError("give one of in, matches, present")
        if self.matches is not None:
            try:
                re.compile(self.matches)
            except re.error as exc:
                raise ValueError(f"matches: not a regular expression ({exc})") from None
        return self


class FinalStatus(SpecModel):
    outcome: Outcome
    rules: list[OutcomeRule] = Field(default_factory=list)


class Statuses(SpecModel):
    """The status vocabulary: active ones, and each final one with its outcome. A status not listed
    stays active while the session has no end time, and counts as ``unknown`` once it has one."""

    active: list[str] = Field(default_factory=list)
    final: dict[str, Outcome | FinalStatus]
    filter_parameter: str | None = Field(
        None,
        description=(
            "where items come without their status field, it is learned with one query per status, filtered by "
            "this parameter (and the field tried again once per max(overlap, 10 minutes))"
        ),
    )

    @model_validator(mode="after")
    def _disjoint(self) -> Statuses:
        if both := set(self.active) & set(self.final):
            raise ValueError(f"active and final at once: {', '.join(sorted(both))}")
        return self
