"""The spec language's reading parts: auth, requests, paginators, the item list, the time window,
lookups and partitions."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import Field, field_validator, model_validator

from agent_session_exporter.read.source import Duration
from agent_session_exporter.read.spec.basics import Path, Paths, SpecModel, check_path, template_names


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
    next_path: Path | None = Field(None, description='where present and empty (null, ""), the page is the last')

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


class Incremental(SpecModel):
    """How the list is narrowed to a time window, and the order it promises (verified on every page)."""

    since_parameter: str | None = Field(None, description="inclusive lower bound on the key time")
    until_parameter: str | None = Field(None, description="inclusive upper bound (time_window paging)")
    format: Literal["iso8601", "unix", "milliseconds"] = "iso8601"
    order: Literal["newest_first", "any"] = Field(
        "newest_first", description="newest_first: paging stops at the first page reaching past the window"
    )
    order_parameter: str = Field("order", description="what a log line names when the order breaks")
    order_by: Literal["key_time", "id"] = Field(
        "key_time",
        description=("what the newest-first order is by: the key time, or a numeric id (sequential ids; verified on the ids)"),
    )
    overlap: Duration | None = Field(None, description="the default overlap of this platform's sources")


class Lookup(SpecModel):
    """How one pending session is re-read: a detail path (``{session_id}``), or the list filtered by
    id (``query`` with ``{session_id}``, items found with the record selector)."""

    path: str
    query: dict[str, str | int | float | bool] = Field(default_factory=dict)
    record: Paths | None = Field(
        None, description="detail: where the item is in the answer (alternatives in order; empty: the answer itself)"
    )
    list: bool = Field(False, description="the answer is a page of the list (an id filter)")

    @model_validator(mode="after")
    def _session_id(self) -> Lookup:
        names = template_names(self.path) + [n for v in self.query.values() if isinstance(v, str) for n in template_names(v)]
        if "session_id" not in names:
            raise ValueError("path or query must hold {session_id}")
        return self


class WebhookPushes(SpecModel):
    """The platform pushes news of its sessions as webhooks: a source given a ``webhook_secret`` takes
    them on the webhook listener, each push a hint to look its session up by ``lookup`` (what the
    lookup reads counts, never the push). How a platform's payloads and signatures read is code
    (``format``: ``read/kapso_webhooks.py``)."""

    kind: Literal["webhook"] = Field(description="webhook: signed HTTP POSTs to POST /webhooks/<format>/<source>")
    format: Literal["kapso"] = Field(description="the payload and signature reader (kapso: Kapso's project webhooks)")


class StreamPushes(SpecModel):
    """The platform streams its activity as server-sent events at ``path``: a source given ``push: sse``
    keeps one connection to it, and each frame saying a session ended is a hint to look that session up
    by ``lookup``. How a platform's frames read is code (``format``: ``read/syntropic137_activity.py``)."""

    kind: Literal["sse"] = Field(description="sse: a server-sent event stream the exporter reads (GET path)")
    path: str = Field(description="below base_url, such as /sse/activity")
    format: Literal["syntropic137"] = Field(description="the frame reader (syntropic137: its activity feed)")

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        if not value.startswith("/") or "://" in value or "{" in value:
            raise ValueError("must start with / (it is appended to the source's base_url) and hold no placeholder")
        return value


#: The platform pushes news of its sessions (``pushes``), as webhooks or as an event stream.
Pushes = Annotated[Union[WebhookPushes, StreamPushes], Field(discriminator="kind")]


class Parent(SpecModel):
    """The list a partition router iterates: its request, paging, items, and each item's id and name."""

    requester: Requester
    paginator: Annotated[Union[PageIncrement, OffsetIncrement, Cursor], Field(discriminator="kind")]
    record_selector: RecordSelector = Field(default_factory=RecordSelector)
    id: Path = "id"
    name: Path | None = None


class PartitionRouter(SpecModel):
    """One list per parent (``{partition}`` in the requester's path or query), the parents listed anew
    every ``interval_option`` (at most ``cap_option`` of them), or named by ``list_option``. A parent
    missing from a listing is still read (a listing may miss one), until it is missing from
    ``missing_listings`` listings in a row: then its pending sessions are dropped
    (``workflow_removed``). Should a listing fail, the parents found last are read meanwhile."""

    parent: Parent
    list_option: str | None = Field(None, description="a string_list option naming the parents (no listing)")
    interval_option: str = Field(description="a duration option: how often the parents are listed")
    cap_option: str = Field(description="an integer option: at most this many parents are read")
    missing_listings: int = Field(3, ge=1)


class ExtraRead(SpecModel):
    """A further read of the list with more parameters (such as ``status: running`` where the plain
    list hides active sessions), walked to its end every cycle."""

    query: dict[str, str | int | float | bool]


class IdGaps(SpecModel):
    """Sequential numeric ids: an id missing between two the list shows, and not read otherwise, is a
    session the list does not show yet (one the API holds in memory). It is tracked as pending (status
    ``unlisted``) and looked up by id once older than the window: 404 drops it."""

    max_per_cycle: int = Field(100, ge=1, description="at most this many new gaps are tracked per cycle")
    unless_option: str | None = Field(None, description="an option that filters the list (gaps mean nothing then)")


class DetailReads(SpecModel):
    """A final session re-read by its lookup (with ``query`` added) before it counts: when its status is
    one of ``statuses`` (for a field only the detail has, such as an error text), or when it was seen
    earlier in one of ``seen`` (for a start time the list overwrites). At most ``max_per_cycle`` a cycle;
    past it, sessions count as listed."""

    statuses: list[str] = Field(default_factory=list)
    seen: list[str] = Field(default_factory=list)
    start_from: Path | None = Field(
        None, description=("a session re-read because it was seen in one of `seen` starts at this field of its detail")
    )
    query: dict[str, str | int | float | bool] = Field(default_factory=dict)
    max_per_cycle: int = Field(50, ge=1)


class WorkflowNames(SpecModel):
    """Workflow names from a list of their own, listed anew every ``interval_option``; a session without
    a name of its own takes its workflow's."""

    parent: Parent
    interval_option: str = Field(description="a duration option: how often the names are listed")
    cap_option: str = Field(description="an integer option: at most this many workflows are listed")
