"""Upstream strings made safe once: where they enter (every record a provider makes, typed or item by
item: ``Provider.parse_items``) and where the state file gives them back (``keep/sqlite.py``).

A string a provider hands on may hold anything JSON can escape. A lone surrogate (``"\\ud800"``,
which the stdlib decoder accepts) cannot be encoded to UTF-8, so a label holding one fails every
render, and an id holding one every commit; a control character (``\\r``, ``\\n``, NUL) has no place in
a label, a log line or a page. So:

- an id (what a session is known by, looked up by, deduplicated and stored by) is never altered:
  one that is not valid UTF-8, or longer than ``MAX_ID_BYTES``, is refused;
- every other string has each lone surrogate and control character (C0, DEL, C1) replaced by
  U+FFFD, so it stays readable and its length is unchanged;
- an error text has every configured secret redacted (an upstream may echo the key it was sent)
  before it is cut to ``MAX_ERROR_EXCERPT``: cut first, a key straddling the cut would show in part.
"""

from __future__ import annotations

import re

from agent_session_exporter.logs import redactor
from agent_session_exporter.model import InvalidRecord, SessionRecord

#: The longest id taken, in UTF-8 bytes (none of the providers' ids comes near it).
MAX_ID_BYTES = 256
REPLACEMENT = "\ufffd"
#: The text fields of a record that may become a label, a log field or a page's text.
TEXT_FIELDS = ("status", "workflow", "workflow_name", "model", "error_message")
#: The longest error excerpt kept (for the landing page), cut after secrets are redacted.
MAX_ERROR_EXCERPT = 200
#: Invalid-record reasons of a refused id.
ID_REASONS = ("id_not_utf8", "id_too_long")
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def is_safe(value: str) -> bool:
    """Whether ``value`` holds no lone surrogate and no control character."""
    return (value.isascii() and value.isprintable()) or _UNSAFE.search(value) is None


def safe_text(value: str) -> str:
    """``value`` with every lone surrogate and control character replaced by U+FFFD."""
    return value if is_safe(value) else _UNSAFE.sub(REPLACEMENT, value)


def check_id(value: str) -> str:
    """``value`` as it is, or InvalidRecord when it is no id to keep: not valid UTF-8 (it holds a
    lone surrogate) or longer than ``MAX_ID_BYTES``."""
    if value.isascii():
        if len(value) > MAX_ID_BYTES:
            raise InvalidRecord("id_too_long", f"{len(value)} bytes")
        return value
    try:
        size = len(value.encode())
    except UnicodeEncodeError:
        raise InvalidRecord("id_not_utf8") from None
    if size > MAX_ID_BYTES:
        raise InvalidRecord("id_too_long", f"{size} bytes")
    return value


def make_safe(record: SessionRecord) -> tuple[str, ...]:
    """Check the record's id (InvalidRecord) and make its text fields safe in place; returns the
    fields that were changed."""
    session_id = record.session_id
    if not session_id.isascii() or len(session_id) > MAX_ID_BYTES:  # check_id's cheap case, inlined
        check_id(session_id)
    if record.error_message:
        record.error_message = redactor.redact(record.error_message)[:MAX_ERROR_EXCERPT]
    # The common case in one test: every text field empty, or printable ASCII (the hot path of a read).
    status, workflow, name, model, error = (
        record.status,
        record.workflow,
        record.workflow_name,
        record.model,
        record.error_message,
    )
    if (
        (not status or (status.isascii() and status.isprintable()))
        and (not workflow or (workflow.isascii() and workflow.isprintable()))
        and (not name or (name.isascii() and name.isprintable()))
        and (not model or (model.isascii() and model.isprintable()))
        and (not error or (error.isascii() and error.isprintable()))
    ):
        return ()
    changed: tuple[str, ...] = ()
    for field in TEXT_FIELDS:
        value = getattr(record, field)
        if value and not is_safe(value):
            setattr(record, field, _UNSAFE.sub(REPLACEMENT, value))
            changed += (field,)
    return changed
