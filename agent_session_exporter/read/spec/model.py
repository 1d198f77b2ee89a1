"""The provider spec language: a session API declared in YAML, validated by these models (their JSON
Schema is ``--spec.schema``). Component names follow Airbyte's declarative connectors where they fit
(``requester``, ``paginator`` with ``page_increment`` / ``offset_increment`` / ``cursor``,
``record_selector``, ``partition_router``); what Airbyte has no word for (a status that ends, the
lookup of one pending session, the order an API promises) has its own key.

A spec says what an API is; ``read/spec/provider.py`` reads it through the pagers that exist, so
dedup, state, sweeps, order checks, caps and the hostile-input rules apply to it unchanged.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from agent_session_exporter.model import Outcome
from agent_session_exporter.read.source import NAME_PATTERN
from agent_session_exporter.read.spec.basics import SpecModel, as_paths, template_names
from agent_session_exporter.read.spec.mapping import Fields, FieldSpec, FinalStatus, OutcomeRule, Statuses
from agent_session_exporter.read.spec.requests import (
    Auth,
    Cursor,
    DetailReads,
    ExtraRead,
    IdGaps,
    Incremental,
    Lookup,
    OffsetIncrement,
    PageIncrement,
    Paginator,
    PartitionRouter,
    Pushes,
    RecordSelector,
    Requester,
    TimeWindow,
    WorkflowNames,
)

SPEC_VERSION = 1
#: Placeholders a request template may use, and where each comes from.
REQUEST_PLACEHOLDERS = ("page_size", "partition")

__all__ = [
    "Auth",
    "Cursor",
    "FieldSpec",
    "Fields",
    "FinalStatus",
    "Incremental",
    "Lookup",
    "OffsetIncrement",
    "OutcomeRule",
    "PageIncrement",
    "Paginator",
    "RecordSelector",
    "Requester",
    "Spec",
    "Statuses",
    "TimeWindow",
    "as_paths",
]


class PageSize(SpecModel):
    default: int = Field(100, ge=1)
    max: int = Field(100, ge=1)


class SessionUrl(SpecModel):
    """The vendor's page of one session: the default ``session_url`` of sources on its cloud API."""

    api_host: str = Field(description="the cloud API's host; sources elsewhere get no default link")
    template: str = Field(description="with {session_id}, and optionally {workflow}, {source}")


class Nouns(SpecModel):
    """What the platform calls a session and a partition, as its log lines say them."""

    session: str = "session"
    partition: str = "workflow"


class OptionSpec(SpecModel):
    """A source option the spec declares (its value reaches templates as ``{options.NAME}``)."""

    type: Literal["string", "integer", "duration", "string_list"] = "string"
    default: Any = None
    description: str = ""
    minimum: float | None = Field(None, description="integer and duration: the smallest value taken")
    item: str = Field("value", description="string_list: what one item is, as errors name it")


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
    partition_router: PartitionRouter | None = None
    also_read: list[ExtraRead] = Field(default_factory=list)
    id_gaps: IdGaps | None = None
    detail_reads: DetailReads | None = None
    workflow_names: WorkflowNames | None = None
    pushes: Pushes | None = None
    nouns: Nouns = Field(default_factory=Nouns)
    session_url: SessionUrl | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Spec:
        if self.page_size.default > self.page_size.max:
            raise ValueError("page_size: default above max")
        if isinstance(self.paginator, TimeWindow) and not (self.incremental.since_parameter and self.incremental.until_parameter):
            raise ValueError("incremental: time_window paging needs since_parameter and until_parameter")
        if isinstance(self.paginator, TimeWindow) and self.incremental.order != "newest_first":
            raise ValueError("incremental.order: time_window paging needs newest_first")
        for where, template in self._templates():
            for name in template_names(template):
                if name not in REQUEST_PLACEHOLDERS and not (
                    name.startswith("options.") and name.removeprefix("options.") in self.options
                ):
                    raise ValueError(f"{where}: unknown placeholder {{{name}}}")
        if self.also_read and isinstance(self.paginator, TimeWindow):
            raise ValueError("also_read: not with time_window paging")
        if (self.id_gaps is not None or self.detail_reads is not None) and self.lookup is None:
            raise ValueError("lookup: id_gaps and detail_reads look sessions up by id")
        if self.pushes is not None and self.lookup is None:
            raise ValueError("lookup: pushes are hints to look sessions up by id")
        router = self.partition_router
        if self.workflow_names is not None:
            for named, kind in ((self.workflow_names.interval_option, "duration"), (self.workflow_names.cap_option, "integer")):
                if named not in self.options or self.options[named].type != kind:
                    raise ValueError(f"workflow_names: {named} must be a declared {kind} option")
        if router is not None:
            wanted = [(router.list_option, "string_list"), (router.interval_option, "duration"), (router.cap_option, "integer")]
            for option, kind in wanted:
                if option is not None and (option not in self.options or self.options[option].type != kind):
                    raise ValueError(f"partition_router: {option} must be a declared {kind} option")
        elif "{partition}" in self.requester.path or any("{partition}" in str(v) for v in self.requester.query.values()):
            raise ValueError("requester: {partition} needs a partition_router")
        return self

    def _templates(self) -> list[tuple[str, str]]:
        out = [("requester.path", self.requester.path)]
        out += [(f"requester.query.{k}", v) for k, v in self.requester.query.items() if isinstance(v, str)]
        if self.lookup is not None:
            out += [
                (f"lookup.query.{k}", v.replace("{session_id}", "")) for k, v in self.lookup.query.items() if isinstance(v, str)
            ]
            out.append(("lookup.path", self.lookup.path.replace("{session_id}", "")))
        return out

    @property
    def figures(self) -> frozenset[str]:
        """The optional figures this API supplies."""
        have = {
            "warnings": self.fields.warnings is not None,
            "tokens": bool(self.fields.tokens),
            "cost": self.fields.cost is not None,
        }
        return frozenset(name for name, present in have.items() if present)

    @property
    def status_table(self) -> dict[str, Outcome | None]:
        table: dict[str, Outcome | None] = {status: None for status in self.statuses.active}
        for status, final in self.statuses.final.items():
            table[status] = final if isinstance(final, Outcome) else final.outcome
        return table
