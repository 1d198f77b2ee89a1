"""The provider spec language: a session API declared in YAML, validated by these models (their JSON
Schema is ``--spec.schema``). Component names follow Airbyte's declarative connectors where they fit
(``requester``, ``paginator`` with ``page_increment`` / ``offset_increment`` / ``cursor``,
``record_selector``, ``partition_router``); what Airbyte has no word for (a status that ends, the
lookup of one pending session, the order an API promises) has its own key.

A spec says what an API is; ``read/spec/provider.py`` reads it through the pagers that exist, so
dedup, state, sweeps, order checks, caps and the hostile-input rules apply to it unchanged.
"""

from __future__ import annotations

import re
import string
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema, field_validator, model_validator

from agent_session_exporter.model import Outcome
from agent_session_exporter.read.source import NAME_PATTERN, Duration

SPEC_VERSION = 1

#: Placeholders a request template may use, and where each comes from.
REQUEST_PLACEHOLDERS = ("page_size", "partition")
#: A path into an item: dotted keys (``workflow.id``); ``""`` is the item (or the body) itself.
_PATH = re.compile(r"^$|^[A-Za-z0-9_$@-]+(\.[A-Za-z0-9_$@-]+)*$")


class SpecModel(BaseModel):
    """Unknown keys are errors; a spec is read once and never changes."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def check_path(value: str) -> str:
    if not _PATH.match(value):
        raise ValueError("must be dotted keys such as data or workflow.id")
    return value


def template_names(template: str) -> list[str]:
    """The ``{placeholders}`` of a template (ValueError for a malformed one)."""
    try:
        return [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
    except ValueError as exc:
        raise ValueError(f"malformed template: {exc}") from None


Path = Annotated[str, Field(description="dotted keys into the item, such as workflow.id")]
#: One path, or alternatives tried in order (the first present wins).
Paths = Union[Path, list[Path]]


def as_paths(value: Paths) -> tuple[str, ...]:
    return (value,) if isinstance(value, str) else tuple(value)


class Auth(SpecModel):
    """How the API takes the source's credential (``api_key`` or ``basic_auth`` in the config; never in
    the spec)."""

    kind: Literal["bearer", "header", "basic"] = "bearer"
    header: str | None = Field(None, description="kind header: the header's name, such as X-Api-Key")
    prefix: str = Field("", description="kind header: what goes before the key")
    required: bool = Field(True, description="whether a source must configure a credential")

    @model_validator(mode="after")
    def _header(self) -> Auth:
        if (self.kind == "header") != (self.header is not None):
            raise ValueError("header: give it with kind header, and only then")
        return self


class Requester(SpecModel):
    """One request: its method, path and fixed query or JSON body (templates of ``{page_size}``,
    ``{partition}`` and ``{options.NAME}``; a template of an unset option leaves the parameter out)."""

    method: Literal["GET", "POST"] = "GET"
    path: str = Field(description="below base_url, such as /sessions; may hold {partition}")
    query: dict[str, str | int | float | bool] = Field(default_factory=dict)
    body: dict[str, Any] | None = Field(None, description="POST: the JSON body's fixed keys")

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        if not value.startswith("/") or "://" in value:
            raise ValueError("must start with / (it is appended to the source's base_url)")
        template_names(value)
        return value


class PageIncrement(SpecModel):
    """Numbered pages from ``start``; the last is told by a flag, a total, or a short page."""

    kind: Literal["page_increment"]
    parameter: str = "page"
    start: int = Field(1, ge=0)
    last_flag: Path | None = Field(None, description="a boolean, true on the last page")
    more_flag: Path | None = Field(None, description="a boolean, true while pages follow (has_more)")
    total_pages: Path | None = None


class OffsetIncrement(SpecModel):
    """Items from offset 0, ``page_size`` at a time, until a short page (or ``total``)."""

    kind: Literal["offset_increment"]
    parameter: str = "offset"
    total: Path | None = Field(None, description="the number of items the list holds")


class Cursor(SpecModel):
    """A token to pass back (``token_path``, sent as ``parameter``), or the next page's URL
    (``next_url_path``: only ever followed on the source's own origin)."""

    kind: Literal["cursor"]
    parameter: str | None = Field(None, description="the query parameter the token is sent as")
    token_path: Path | None = None
    next_url_path: Path | None = None

    @model_validator(mode="after")
    def _one_way(self) -> Cursor:
        if (self.token_path is None) == (self.next_url_path is None):
            raise ValueError("give token_path or next_url_path, one of them")
        if self.token_path is not None and self.parameter is None:
            raise ValueError("parameter: required with token_path")
        return self


class TimeWindow(SpecModel):
    """No page token: a newest-first list whose inclusive upper bound (``incremental.until_parameter``)
    moves to the oldest key time seen; the boundary item comes back once (deduplicated). A full page out
    of order splits its range in halves until each half fits in a page."""

    kind: Literal["time_window"]


Paginator = Annotated[Union[PageIncrement, OffsetIncrement, Cursor, TimeWindow], Field(discriminator="kind")]


class RecordSelector(SpecModel):
    path: Path = Field("", description="where the items are in a page; empty: the page is the list")

    _check = field_validator("path")(classmethod(lambda cls, v: check_path(v)))


class FieldSpec(SpecModel):
    """Where one session field comes from, and how it is written."""

    path: Paths
    format: Literal["auto", "iso8601", "unix", "milliseconds", "number", "decimal_string"] = Field(
        "auto", description="times: auto (ISO 8601, or Unix seconds/ms/µs/ns told by magnitude), iso8601, "
                            "unix, milliseconds; figures: number, decimal_string")
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
    key_time: Literal["started_at", "finished_at"] = "started_at"
    duration: Declared | None = None
    error_text: Declared | None = None
    warnings: Declared | None = None
    tokens: dict[str, Declared] = Field(default_factory=dict, description="token kind: its field")
    cost: Declared | None = Field(None, description="US dollars (a scale for other units)")
    model: Declared | None = None
    workflow_id: Declared | None = None
    workflow_name: Declared | None = None

    @model_validator(mode="after")
    def _key_time(self) -> Fields:
        key = getattr(self, self.key_time)
        if key is None:
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

    @model_validator(mode="after")
    def _disjoint(self) -> Statuses:
        if both := set(self.active) & set(self.final):
            raise ValueError(f"active and final at once: {', '.join(sorted(both))}")
        return self


class Incremental(SpecModel):
    """How the list is narrowed to a time window, and the order it promises (verified on every page)."""

    since_parameter: str | None = Field(None, description="inclusive lower bound on the key time")
    until_parameter: str | None = Field(None, description="inclusive upper bound (time_window paging)")
    format: Literal["iso8601", "unix", "milliseconds"] = "iso8601"
    order: Literal["newest_first", "any"] = Field(
        "newest_first", description="newest_first: paging stops at the first page reaching past the window")
    order_parameter: str = Field("order", description="what a log line names when the order breaks")
    overlap: Duration | None = Field(None, description="the default overlap of this platform's sources")


class Lookup(SpecModel):
    """How one pending session is re-read: a detail path (``{session_id}``), or the list filtered by
    id (``query`` with ``{session_id}``, items found with the record selector)."""

    path: str
    query: dict[str, str | int | float | bool] = Field(default_factory=dict)
    record: Paths | None = Field(None, description="detail: where the item is in the answer (alternatives "
                                                   "in order; empty: the answer itself)")
    list: bool = Field(False, description="the answer is a page of the list (an id filter)")

    @model_validator(mode="after")
    def _session_id(self) -> Lookup:
        names = template_names(self.path) + [n for v in self.query.values() if isinstance(v, str)
                                             for n in template_names(v)]
        if "session_id" not in names:
            raise ValueError("path or query must hold {session_id}")
        return self


class PageSize(SpecModel):
    default: int = Field(100, ge=1)
    max: int = Field(100, ge=1)


class SessionUrl(SpecModel):
    """The vendor's page of one session: the default ``session_url`` of sources on its cloud API."""

    api_host: str = Field(description="the cloud API's host; sources elsewhere get no default link")
    template: str = Field(description="with {session_id}, and optionally {workflow}, {source}")


class OptionSpec(SpecModel):
    """A source option the spec declares (its value reaches templates as ``{options.NAME}``)."""

    type: Literal["string", "integer", "duration", "string_list"] = "string"
    default: Any = None
    description: str = ""


class Spec(SpecModel):
    """One platform's session API."""

    spec_version: Literal[1]
    name: str = Field(pattern=NAME_PATTERN, description="the provider's name (the `provider` label)")
    description: str = ""
    auth: Auth = Field(default_factory=Auth)
    page_size: PageSize = Field(default_factory=PageSize)
    options: dict[str, OptionSpec] = Field(default_factory=dict)
    requester: Requester
    paginator: Paginator
    record_selector: RecordSelector = Field(default_factory=RecordSelector)
    fields: Fields
    statuses: Statuses
    incremental: Incremental = Field(default_factory=Incremental)
    lookup: Lookup | None = None
    session_url: SessionUrl | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Spec:
        if self.page_size.default > self.page_size.max:
            raise ValueError("page_size: default above max")
        if isinstance(self.paginator, TimeWindow) and not (
                self.incremental.since_parameter and self.incremental.until_parameter):
            raise ValueError("incremental: time_window paging needs since_parameter and until_parameter")
        if isinstance(self.paginator, TimeWindow) and self.incremental.order != "newest_first":
            raise ValueError("incremental.order: time_window paging needs newest_first")
        for where, template in self._templates():
            for name in template_names(template):
                if name not in REQUEST_PLACEHOLDERS and not (
                        name.startswith("options.") and name.removeprefix("options.") in self.options):
                    raise ValueError(f"{where}: unknown placeholder {{{name}}}")
        return self

    def _templates(self) -> list[tuple[str, str]]:
        out = [("requester.path", self.requester.path)]
        out += [(f"requester.query.{k}", v) for k, v in self.requester.query.items() if isinstance(v, str)]
        if self.lookup is not None:
            out += [(f"lookup.query.{k}", v.replace("{session_id}", ""))
                    for k, v in self.lookup.query.items() if isinstance(v, str)]
            out.append(("lookup.path", self.lookup.path.replace("{session_id}", "")))
        return out

    @property
    def figures(self) -> frozenset[str]:
        """The optional figures this API supplies."""
        have = {"warnings": self.fields.warnings is not None, "tokens": bool(self.fields.tokens),
                "cost": self.fields.cost is not None}
        return frozenset(name for name, present in have.items() if present)

    @property
    def status_table(self) -> dict[str, Outcome | None]:
        table: dict[str, Outcome | None] = {status: None for status in self.statuses.active}
        for status, final in self.statuses.final.items():
            table[status] = final if isinstance(final, Outcome) else final.outcome
        return table
