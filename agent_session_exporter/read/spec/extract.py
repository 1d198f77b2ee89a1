"""A spec's ``fields`` and ``statuses`` compiled into one item-to-record function, through the field
readers every provider uses (``read/fields.py``): the same checks, bounds and reasons."""

from __future__ import annotations

import re
from typing import Any, Callable

from agent_session_exporter.model import InvalidRecord, Outcome, Phase, SessionRecord, classify
from agent_session_exporter.read.fields import (
    MAX_COST_USD,
    MAX_ERROR_TEXT,
    MAX_SECONDS,
    MAX_TOKENS,
    MAX_WARNINGS,
    elapsed,
    figure,
    id_or_none,
    lenient_str,
    lenient_text,
    optional_str,
    require_str,
    time_field,
    time_or_none,
)
from agent_session_exporter.read.spec.model import FieldSpec, FinalStatus, OutcomeRule, Spec, as_paths
from agent_session_exporter.read.typed import Fields

_MISSING = object()


def get_path(value: Any, path: str) -> Any:
    """The value at dotted ``path`` (None where any step is missing or not an object)."""
    if not path:
        return value
    for key in path.split("."):
        if not isinstance(value, (dict, Fields)):
            return None
        value = value.get(key)
    return value


def first_present(item: Any, paths: tuple[str, ...]) -> Any:
    """The value at the first of ``paths`` that has one (not None, not "")."""
    for path in paths:
        value = get_path(item, path)
        if value is not None and value != "":
            return value
    return None


def compiled_paths(paths: tuple[str, ...]) -> Callable[[Any], Any]:
    """``first_present`` of ``paths`` as one function, each path split once (it runs per field per item)."""
    steps = tuple(tuple(path.split(".")) if path else () for path in paths)
    if len(steps) == 1 and len(steps[0]) == 1:
        key = steps[0][0]

        def one_key(item: Any) -> Any:
            value = item.get(key) if isinstance(item, (dict, Fields)) else None
            return None if value == "" else value

        return one_key

    def first(item: Any) -> Any:
        for keys in steps:
            value = item
            for key in keys:
                value = value.get(key) if isinstance(value, (dict, Fields)) else None
            if value is not None and value != "":
                return value
        return None

    return first


class _Reader:
    """One declared field: its value as a one-key mapping for the field readers, named by its path."""

    def __init__(self, spec: FieldSpec) -> None:
        self.paths = as_paths(spec.path)
        self.name = self.paths[0]
        self.spec = spec
        #: The field's value in an item: ``first_present`` of its paths.
        self.value = compiled_paths(self.paths)
        self._milliseconds = spec.format == "milliseconds"

    def one(self, item: Any) -> dict[str, Any]:
        return {self.name: self.value(item)}

    def time(self, item: Any) -> float | None:
        return time_field({self.name: self._time_value(item)}, self.name, required=self.spec.required)

    def time_or_none(self, item: Any) -> float | None:
        """``time`` of an item, None where it would raise (``RecordMapper.key_of``)."""
        return time_or_none(self._time_value(item))

    def _time_value(self, item: Any) -> Any:
        value = self.value(item)
        if self._milliseconds and type(value) in (int, float):
            value = value / 1000.0
        return value

    def figure(self, item: Any, maximum: float) -> float | None:
        raw = self.value(item)
        kind = type(raw)
        value: float | None = None
        if (kind is int or kind is float) and 0 <= raw <= maximum / self.spec.scale:
            value = float(raw)  # fields.figure's common case, inlined (it runs for every figure of every item)
        elif raw is not None:
            value = figure({self.name: raw}, self.name, maximum / self.spec.scale)
        if value is None and self.spec.required:
            raise InvalidRecord("missing_field", self.name)
        return value if value is None or self.spec.scale == 1.0 else value * self.spec.scale


def _optional(spec: FieldSpec | None) -> _Reader | None:
    return None if spec is None else _Reader(spec)


def _rule_test(rule: OutcomeRule) -> Callable[[Any], bool]:
    paths = as_paths(rule.field)
    if rule.in_ is not None:
        allowed = set(rule.in_)
        return lambda item: lenient_text(first_present(item, paths), MAX_ERROR_TEXT) in allowed
    if rule.matches is not None:
        pattern = re.compile(rule.matches)
        return lambda item: bool(pattern.search(lenient_text(first_present(item, paths), MAX_ERROR_TEXT) or ""))
    wanted = bool(rule.present)
    return lambda item: (first_present(item, paths) is not None) == wanted


def error_excerpt(details: Any) -> str | None:
    """An error field is free-form: a text, or an object with a ``message`` (or ``error``)."""
    if isinstance(details, dict):
        return lenient_str(details, "message", MAX_ERROR_TEXT) or lenient_str(details, "error", MAX_ERROR_TEXT)
    return lenient_text(details, MAX_ERROR_TEXT)


class RecordMapper:
    """``spec.fields`` and ``spec.statuses`` as one function: an API item to a SessionRecord, or
    InvalidRecord with the reason the field readers give."""

    def __init__(self, spec: Spec) -> None:
        fields = spec.fields
        self.statuses = spec.status_table
        self.rules = {
            status: [(_rule_test(rule), rule.outcome) for rule in final.rules]
            for status, final in spec.statuses.final.items()
            if isinstance(final, FinalStatus) and final.rules
        }
        self.id = _Reader(fields.id)
        self.status = _optional(fields.status)
        self.started = _optional(fields.started_at)
        self.finished = _optional(fields.finished_at)
        self.key_time = fields.key_time
        #: A key time of its own (a creation time), or None: started_at's or finished_at's.
        self.own_key = None if isinstance(fields.key_time, str) else _Reader(fields.key_time)
        self.duration = _optional(fields.duration)
        self.error = _optional(fields.error_text)
        self.warnings = _optional(fields.warnings)
        self.tokens = {kind: _Reader(field) for kind, field in fields.tokens.items()}
        self.cost = _optional(fields.cost)
        self.model = _optional(fields.model)
        self.workflow = _optional(fields.workflow_id)
        self.workflow_name = _optional(fields.workflow_name)

    def status_of(self, item: Any) -> str:
        """The raw status ("" where the spec declares none, or an optional one is absent)."""
        if self.status is None:
            return ""
        if self.status.spec.required:
            return require_str(self.status.one(item), self.status.name)
        return optional_str(self.status.one(item), self.status.name) or ""

    def key_of(self, item: Any) -> tuple[str, float] | None:
        """The item's session id and key time as its record would hold them; None where either does not
        read (then the item is read whole)."""
        if not isinstance(item, (dict, Fields)) or (session_id := id_or_none(self.id.value(item))) is None:
            return None
        if self.own_key is not None:
            key_time = self.own_key.time_or_none(item)
        else:
            reader = self.started if self.key_time == "started_at" else self.finished
            key_time = reader.time_or_none(item) if reader is not None else None
        return None if key_time is None else (session_id, key_time)

    def __call__(self, item: dict[str, Any], status: str | None = None) -> SessionRecord:
        """``status``: the status learned otherwise (a status-filtered query), where the item has none."""
        raw = self.status_of(item)
        status = raw or status or ""
        started_at = self.started.time(item) if self.started else None
        finished_at = self.finished.time(item) if self.finished else None
        if self.own_key is not None:
            key_time = self.own_key.time(item)
            if key_time is None:
                raise InvalidRecord("missing_field", self.own_key.name)
        else:
            key_time = started_at if self.key_time == "started_at" else finished_at
            if key_time is None:
                reader = self.started if self.key_time == "started_at" else self.finished
                raise InvalidRecord("missing_field", reader.name if reader else str(self.key_time))
        if status:
            phase, outcome, known = classify(status, self.statuses, finished_at)
        elif self.status is None:  # an API without statuses: a session ends with its end time
            phase, outcome, known = classify("", {}, finished_at)
        else:  # no status yet: active until one is learned (a status-filtered query)
            phase, outcome, known = Phase.ACTIVE, None, True
        if phase is Phase.FINISHED and status in self.rules:
            outcome = self._ruled(item, status, outcome)
        error = self.error.value(item) if self.error else None
        return SessionRecord(
            session_id=require_str(self.id.one(item), self.id.name, allow_int=True),
            status=status,
            phase=phase,
            outcome=outcome,
            known_status=known,
            key_time=key_time,
            started_at=started_at,
            finished_at=finished_at,
            duration_seconds=self.duration.figure(item, MAX_SECONDS) if self.duration else elapsed(started_at, finished_at),
            warnings=(self.warnings.figure(item, MAX_WARNINGS) or 0.0) if self.warnings else 0.0,
            error_text=bool(error) and not isinstance(error, bool),
            tokens={kind: value for kind, reader in self.tokens.items() if (value := reader.figure(item, MAX_TOKENS))},
            cost_usd=self.cost.figure(item, MAX_COST_USD) if self.cost else None,
            model=lenient_str(self.model.one(item), self.model.name) if self.model else None,
            workflow=(lenient_str(self.workflow.one(item), self.workflow.name) or "") if self.workflow else "",
            workflow_name=lenient_str(self.workflow_name.one(item), self.workflow_name.name) if self.workflow_name else None,
            error_message=error_excerpt(error),
        )

    def _ruled(self, item: Any, status: str, outcome: Outcome | None) -> Outcome | None:
        """The outcome of the first rule of ``status`` that matches, else the status's own."""
        for test, ruled in self.rules[status]:
            if test(item):
                return ruled
        return outcome
