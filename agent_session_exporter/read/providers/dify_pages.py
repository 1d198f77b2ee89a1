"""Dify's workflow-log pages decoded typed (msgspec): only the fields the exporter reads, each as the
plain path would read it; a page that does not fit is read item by item (``read/typed.py``)."""

from __future__ import annotations

from typing import Any

import msgspec

from agent_session_exporter.model import InvalidRecord
from agent_session_exporter.read.fields import MAX_PLAIN_SECONDS, list_field, time_field
from agent_session_exporter.read.typed import Untyped, as_plain

PATH = "/workflows/logs"


class Run(msgspec.Struct):
    """The fields of ``workflow_run`` the exporter reads (a page that does not fit is read item by item)."""

    status: str
    id: str | int | None = None
    created_at: float | str | None = None
    finished_at: float | str | None = None
    elapsed_time: float | None = None
    total_tokens: float | None = None
    exceptions_count: float | None = None
    error: str | None = None


class Row(msgspec.Struct):
    workflow_run: Run | None = None
    id: str | int | None = None
    created_at: float | str | None = None


class Page(msgspec.Struct):
    data: list[Row]
    has_more: bool | None = None


PAGE = msgspec.json.Decoder(Page)


def seconds_as_is(value: float | str | None) -> float | None:
    """A time of a typed page that ``time_field`` would take as it is (Unix seconds); Untyped otherwise."""
    if value is None or (type(value) is float and 0 <= value < MAX_PLAIN_SECONDS):
        return value
    raise Untyped


def run_id(item: Any) -> str | None:
    run = item.workflow_run if isinstance(item, Row) else item.get("workflow_run") if isinstance(item, dict) else None
    run_id = run.id if isinstance(run, Run) else run.get("id") if isinstance(run, dict) else None
    return None if run_id is None else str(run_id)


def row_created_at(item: Any) -> float | None:
    """A log row's ``created_at`` (what the list is filtered by), None where it has none that reads."""
    if isinstance(item, Row) and type(item.created_at) is float:
        return item.created_at
    plain = as_plain(item) if isinstance(item, Row) else item
    try:
        return time_field(plain, "created_at") if isinstance(plain, dict) else None
    except InvalidRecord:
        return None


def read_page(body: Any) -> tuple[list[Any], bool]:
    if type(body) is Page:
        return body.data, body.has_more is not True
    items = list_field(body, "data", PATH)
    return items, body.get("has_more") is not True
