"""Sessions re-read one by one (``Provider.recheck_pending``): what each answer says of the session."""

from __future__ import annotations

from typing import Any, Awaitable, Callable, Iterable

from agent_session_exporter.model import PendingRef, PollResult, SessionRecord
from agent_session_exporter.read.http_client import AuthRefused, NotFound, UpstreamError


class FilterIgnored(Exception):
    """A lookup got rows its filter leaves out: the API ignored ``parameter``, and the lookup ends there
    (the session waits; ``recheck`` counts it)."""

    def __init__(self, parameter: str) -> None:
        super().__init__(f"the API ignored the lookup's filter {parameter}")
        self.parameter = parameter


async def recheck(
    parse: Callable[[list[Any], PollResult], list[SessionRecord]],
    pending: Iterable[PendingRef],
    result: PollResult,
    fetch: Callable[[PendingRef], Awaitable[list[Any]]],
) -> None:
    """Each session of ``pending`` read with ``fetch``: gone, unreadable (and why), or its records (``parse``:
    the provider's ``parse_items``)."""
    for ref in pending:
        try:
            items = await fetch(ref)
        except NotFound:
            result.gone.append(ref.session_id)
            continue
        except AuthRefused:
            raise
        except UpstreamError as exc:
            result.unreadable[ref.session_id] = exc.kind
            continue
        except FilterIgnored:
            result.unreadable[ref.session_id] = "filter_ignored"
            result.invalid.append(("filter_ignored", None))  # counted each time an answer proves it
            continue
        records = parse(items, result)
        if not items:
            result.gone.append(ref.session_id)
        elif not records:
            result.unreadable[ref.session_id] = "invalid"
        elif all(r.session_id != ref.session_id for r in records):
            result.unreadable[ref.session_id] = "not_in_answer"  # the API ignored the id it was asked for
