"""Each pager on its own: what it asks for, when it stops, and its max_pages guard."""

from __future__ import annotations

import asyncio
import contextlib

from agent_session_exporter.read.pagers import cursor_pages, numbered_pages, time_ranges


async def collect(pages) -> list[list[int]]:
    return [items async for items in pages]


async def test_numbered_pages_stop_at_the_last_page_and_at_max_pages():
    asked: list[int] = []
    limits: list[str] = []

    async def fetch(page: int) -> dict:
        asked.append(page)
        return {"items": [page] * 2, "last": page == 3}

    read = lambda body: (body["items"], body["last"])  # noqa: E731
    assert await collect(numbered_pages(fetch, read, first=1, max_pages=10, on_limit=lambda: limits.append("x"))) == [
        [1, 1],
        [2, 2],
        [3, 3],
    ]
    assert asked == [1, 2, 3] and not limits
    asked.clear()
    assert len(await collect(numbered_pages(fetch, read, first=0, max_pages=2, on_limit=lambda: limits.append("x")))) == 2
    assert asked == [0, 1] and limits == ["x"]


async def test_numbered_pages_stop_at_an_empty_page_and_prefetch_is_cancelled_on_early_stop():
    started: list[int] = []
    cancelled: list[int] = []

    async def fetch(page: int) -> dict:
        started.append(page)
        try:
            await asyncio.sleep(0 if page == 0 else 0.05)
        except asyncio.CancelledError:
            cancelled.append(page)
            raise
        return {"items": [page], "last": False}

    pages = numbered_pages(fetch, lambda b: (b["items"], b["last"]), first=0, max_pages=100, on_limit=lambda: None, prefetch=True)
    async with contextlib.aclosing(pages):
        async for items in pages:
            assert items == [0]
            break  # the caller stops early: the prefetched page 1 is abandoned
    assert started == [0, 1] and cancelled == [1]

    async def empty(page: int) -> dict:
        return {"items": [], "last": False}

    assert await collect(
        numbered_pages(empty, lambda b: (b["items"], b["last"]), first=0, max_pages=9, on_limit=lambda: None)
    ) == [[]]


async def test_cursor_pages_follow_after_and_stop_on_a_repeated_cursor_or_max_pages():
    asked: list[str | None] = []

    async def looping(cursor: str | None) -> dict:
        asked.append(cursor)
        return {"items": [1], "after": "A" if cursor is None else ("B" if cursor == "A" else "A")}

    read = lambda body: (body["items"], body["after"])  # noqa: E731
    assert len(await collect(cursor_pages(looping, read, max_pages=50, on_limit=lambda: None))) == 3
    assert asked == [None, "A", "B"]  # B points back to A: the walk ends there
    limits: list[int] = []
    counter = iter(range(10**6))

    async def endless(cursor: str | None) -> dict:
        return {"items": [1], "after": f"c{next(counter)}"}

    assert len(await collect(cursor_pages(endless, read, max_pages=7, on_limit=lambda: limits.append(1)))) == 7
    assert limits == [1]


async def test_time_ranges_page_backwards_in_order_and_split_out_of_order():
    keys = [100.0 + n for n in range(25)]

    def make_read(order):
        asked: list[tuple[float, float | None]] = []
        seen: set[float] = set()

        async def read(low: float, high: float | None) -> tuple[int, list[float]]:
            asked.append((low, high))
            chosen = order([k for k in keys if k >= low and (high is None or k <= high)])[:10]
            seen.update(chosen)
            return len(chosen), chosen

        return read, asked, seen

    newest = lambda ks: list(sorted(ks, reverse=True))  # noqa: E731
    read, asked, seen = make_read(newest)
    await time_ranges(
        read,
        since=0.0,
        now=200.0,
        page_size=10,
        max_pages=20,
        newest_first=lambda ks: ks == sorted(ks, reverse=True),
        on_limit=lambda: None,
        on_stuck=lambda at: None,
    )
    assert seen == set(keys) and len(asked) == 3 and asked[0] == (0.0, None)

    read, asked, seen = make_read(sorted)  # oldest first, though newest first was promised
    await time_ranges(
        read,
        since=0.0,
        now=200.0,
        page_size=10,
        max_pages=50,
        newest_first=lambda ks: ks == sorted(ks, reverse=True),
        on_limit=lambda: None,
        on_stuck=lambda at: None,
    )
    assert seen == set(keys)

    limits: list[int] = []
    read, asked, seen = make_read(sorted)
    await time_ranges(
        read,
        since=0.0,
        now=200.0,
        page_size=10,
        max_pages=2,
        newest_first=lambda ks: False,
        on_limit=lambda: limits.append(1),
        on_stuck=lambda at: None,
    )
    assert len(asked) == 2 and limits == [1]


async def test_numbered_pages_never_end_on_a_full_page_whatever_a_total_says():
    """The shared paging rule (#24): a full page never ends paging, whatever a total (or a flag made of
    one, Spring's ``last``, Dify's ``has_more``) says; a total ends paging only with a short page."""
    rows = list(range(250))
    asked: list[int] = []

    async def fetch(page: int) -> dict:
        asked.append(page)
        return {"items": rows[page * 100 : (page + 1) * 100], "total": 100}  # a "total" that counts the page

    read = lambda body: (body["items"], (len(asked)) * 100 >= body["total"])  # noqa: E731
    pages = await collect(numbered_pages(fetch, read, first=0, max_pages=10, on_limit=lambda: None, page_size=100))
    assert [len(p) for p in pages] == [100, 100, 50] and asked == [0, 1, 2]  # the short page agrees: the end

    asked.clear()
    never_last = lambda body: (body["items"], False)  # noqa: E731
    pages = await collect(numbered_pages(fetch, never_last, first=0, max_pages=10, on_limit=lambda: None, page_size=100))
    assert [len(p) for p in pages] == [100, 100, 50, 0]  # a short page the total disagrees with: on to an empty one
