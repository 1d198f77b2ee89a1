"""A HoneyHive source's options: which of its three APIs is read (``api``), the project, the page size
each API allows, and what a source on a deprecated API is told."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from agent_session_exporter.read.source import Duration, SourceBase, template_fields

#: Each API's largest ``limit`` (GET /session has none documented).
MAX_LIMIT = {"search": 1000, "events": 7500}
#: What a source reading an older API is told, in the log at start and on the landing page.
DEPRECATED = {
    "events": "api: events reads POST /v1/events/export, which HoneyHive marks deprecated "
    '("use POST /v1/events/search instead"): set api: search',
    "sessions": "api: sessions reads GET /session, which is gone from HoneyHive's current API: set api: search",
}


class HoneyhiveSource(SourceBase):
    SESSION_URL_DEFAULT = ("honeyhive.ai", "https://app.honeyhive.ai/projects/{project}/sessions/{session_id}")
    provider: Literal["honeyhive"]
    overlap: Duration = Field(
        600.0,
        ge=0,
        description="sessions arrive as their events are exported (asynchronously, in batches) "
        "and are keyed by their earliest event: minutes late is normal",
    )
    project: str | None = Field(
        None,
        min_length=1,
        description="required with api: events and sessions; with api: search (its key is "
        "project-scoped) only used in session links ({project})",
    )
    api: Literal["search", "events", "sessions"] = Field(
        "search",
        description="search: POST /v1/events/search (HoneyHive's current API); for older deployments, "
        "deprecated: events (POST /v1/events/export) and sessions (GET /session)",
    )
    page_size: int = Field(1000, ge=1, le=10000, description="at most 1000 with api: search, 7500 with api: events")

    @model_validator(mode="after")
    def _per_api(self) -> HoneyhiveSource:
        if self.project is None and self.api != "search":
            raise ValueError(f"project: required with api: {self.api}")
        if self.project is None and self.session_url and "project" in template_fields(self.session_url):
            raise ValueError("session_url: {project} needs project")
        if self.page_size > MAX_LIMIT.get(self.api, self.page_size):
            raise ValueError(f"page_size: the {self.api} API allows at most {MAX_LIMIT[self.api]}")
        return self

    @property
    def deprecated(self) -> str | None:
        return DEPRECATED.get(self.api)
