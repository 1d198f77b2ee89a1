"""The ways APIs page, each written once, each bounded by ``max_pages``.

A pager knows how to ask for the next page and when there is none; what the items mean, and
when to stop early, is the provider's business. ``numbered_pages`` and ``cursor_pages`` are
async generators of item lists (close them with ``contextlib.aclosing`` when stopping early);
``time_ranges`` drives a reader over inclusive time bounds.
"""

from __future__ import annotations

import asyncio
from typing import Any, AsyncGenerator, Awaitable, Callable, Sequence

#: Inclusive bounds are sent at microsecond precision: split halves overlap by this, never gap.
_BOUND_SLACK = 2e-6
#: The narrowest time range worth splitting further.
_MIN_SPLIT_SECONDS = 1e-3


async def numbered_pages(
    fetch: Callable[[int], Awaitable[Any]],
    read: Callable[[Any], tuple[list[Any], bool]],
    *,
    first: int,
    max_pages: int,
    on_limit: Callable[[], None],
    prefetch: bool = False,
    page_size: int | None = None,
) -> AsyncGenerator[list[Any], None]:
    """Pages ``first``, ``first + 1``, ... until ``read`` says the last one (or a page is empty).

    ``page_size``, the items each page asks for: a full page never ends paging, whatever ``read`` makes
    of a total (a ``last`` or ``has_more`` flag made of one, a total that counts only the page); a total
    ends paging only when a short page agrees with it. (A page of more items than asked for has broken
    the paging already: there ``read`` has the last word.)

    ``prefetch``: a page that is not the last means the next one is needed (the API filters by
    time itself), so it is requested while this one is being used.
    """
    pending: asyncio.Task[Any] | None = None
    try:
        for page in range(first, first + max_pages):
            if pending is not None:
                body, pending = await pending, None
            else:
                body = await fetch(page)
            items, last = read(body)
            if len(items) == page_size:
                last = False
            if prefetch and not last and items:
                pending = asyncio.ensure_future(fetch(page + 1))
                await asyncio.sleep(0)  # let it send its request before this page is used
            yield items
            if last or not items:
                return
        on_limit()
    finally:
        if pending is not None:
            pending.cancel()
            await asyncio.gather(pending, return_exceptions=True)


async def cursor_pages(
    fetch: Callable[[str | None], Awaitable[Any]],
    read: Callable[[Any], tuple[list[Any], str | None]],
    *,
    max_pages: int,
    on_limit: Callable[[], None],
) -> AsyncGenerator[list[Any], None]:
    """Pages following an opaque ``after`` cursor until a page is empty or has no new cursor
    (a cursor seen before ends the walk: an API that loops cannot hold it)."""
    cursor: str | None = None
    seen: set[str] = set()
    for _ in range(max_pages):
        items, next_cursor = read(await fetch(cursor))
        yield items
        if not items or not next_cursor or next_cursor in seen:
            return
        seen.add(next_cursor)
        cursor = next_cursor
    on_limit()


async def time_ranges(
    read: Callable[[float, float | None], Awaitable[tuple[int, Sequence[float]]]],
    *,
    since: float,
    now: float,
    page_size: int,
    max_pages: int,
    newest_first: Callable[[Sequence[float]], bool],
    on_limit: Callable[[], None],
    on_stuck: Callable[[float], None],
) -> None:
    """Keyset paging over inclusive time bounds (``started_after`` / ``started_before``), where the
    API returns at most ``page_size`` items of a range and no page number.

    ``read(low, high)`` fetches one range (``high`` None: no upper bound) and returns the number of
    items and their key times. A full page in newest-first order continues below its oldest key
    time (the boundary item comes back once more); a full page out of order splits its range in
    halves, until each half fits in a page. ``on_stuck(time)``: a full page shares one key time.
    """
    ranges: list[tuple[float, float | None]] = [(since, None)]
    pages = 0
    while ranges:
        if pages >= max_pages:
            on_limit()
            return
        low, high = ranges.pop()
        count, keys = await read(low, high)
        pages += 1
        if count < page_size or not keys:
            continue  # this range is complete
        oldest = min(keys)
        if newest_first(keys):
            if high is not None and oldest + 1e-6 >= high:
                on_stuck(oldest)
                continue
            ranges.append((low, oldest + 1e-6))  # rounded up: nothing at the boundary is skipped
            continue
        top = high if high is not None else max(now, max(keys)) + 1.0
        if top - low < _MIN_SPLIT_SECONDS:
            on_stuck(low)
            continue
        middle = (low + top) / 2
        ranges += [(low, middle + _BOUND_SLACK), (middle - _BOUND_SLACK, high)]
