"""How a declared provider asks: requests built from the spec's templates, and lists walked by their
paginator through the pagers that exist (``read/pagers.py``)."""

from __future__ import annotations

import functools
from typing import Any, AsyncGenerator, Awaitable, Callable, ClassVar, Sequence
from urllib.parse import parse_qsl, quote, urlsplit

from agent_session_exporter.model import PollResult, PollWindow
from agent_session_exporter.read.fields import InvalidPage
from agent_session_exporter.read.http_client import BEARER, HeaderAuth
from agent_session_exporter.read.pagers import cursor_pages, numbered_pages, time_ranges
from agent_session_exporter.read.providers.base import Provider, now_of
from agent_session_exporter.read.source import SourceBase
from agent_session_exporter.read.spec.extract import get_path
from agent_session_exporter.read.spec.model import Cursor, OffsetIncrement, PageIncrement, Spec
from agent_session_exporter.read.spec.requests import RecordSelector, Requester
from agent_session_exporter.read.spec.typed import page_decoder_of
from agent_session_exporter.read.typed import Fields
from agent_session_exporter.timeparse import to_iso


def auth_of(spec: Spec) -> HeaderAuth:
    """The header the source's key goes in (Basic auth, when configured, is the HTTP client's)."""
    if spec.auth.kind == "header" and spec.auth.header is not None:
        return HeaderAuth(spec.auth.header, spec.auth.prefix)
    return BEARER


def format_time(value: float, kind: str) -> str | int:
    if kind == "unix":
        return int(value)
    if kind == "milliseconds":
        return int(value * 1000)
    return to_iso(value)


class SpecPaging(Provider[SourceBase]):
    """Requests and page walks of a spec (``SpecProvider`` reads with them)."""

    SPEC: ClassVar[Spec]
    spec: Spec

    def options(self) -> dict[str, Any]:
        """The values of the spec's declared options for this source."""
        declared = getattr(self.source, "options", None)
        if isinstance(declared, dict):
            return declared
        return {name: getattr(self.source, name, None) for name in self.spec.options}

    def render(self, template: Any, partition: str | None = None, session_id: str | None = None, size: int | None = None) -> Any:
        """A template's value: ``{page_size}``, ``{partition}``, ``{session_id}``, ``{options.NAME}``. A
        template that is one placeholder keeps its value's type; one whose value is unset is None (the
        parameter is left out)."""
        if not isinstance(template, str) or "{" not in template:
            return template
        values = {
            "page_size": size or self.source.page_size,
            "partition": partition,
            "session_id": session_id,
            **{f"options.{k}": v for k, v in self.options().items()},
        }
        name = template[1:-1]
        if template.startswith("{") and template.endswith("}") and name in values:
            return values[name]
        out = template
        for key, value in values.items():
            if "{" + key + "}" in out:
                if value is None:
                    return None
                out = out.replace("{" + key + "}", str(value))
        return out

    def path(self, template: str, partition: str | None = None, session_id: str | None = None) -> str:
        for key, value in (("partition", partition), ("session_id", session_id)):
            if value is not None:
                template = template.replace("{" + key + "}", quote(value, safe=""))
        return template

    def base_params(
        self, requester: Requester, partition: str | None, since: float | None, size: int | None = None
    ) -> dict[str, Any]:
        params = {key: self.render(value, partition, size=size) for key, value in requester.query.items()}
        incremental = self.spec.incremental
        if since is not None and incremental.since_parameter and requester is self.spec.requester:
            params[incremental.since_parameter] = format_time(since, incremental.format)
        return params

    async def fetch(self, requester: Requester, path: str, params: dict[str, Any]) -> Any:
        """One request: GET with a query, or POST with the fixed body and the parameters. The list's pages
        are decoded typed (``read/spec/typed.py``), the others plain."""
        typed = page_decoder_of(self.spec) if requester is self.spec.requester else None
        if requester.method == "GET":
            return await self.http.get_json(path, params, typed)
        body = {key: self.render(value) for key, value in (requester.body or {}).items()}
        return await self.http.post_json(path, {**body, **{k: v for k, v in params.items() if v is not None}}, typed)

    @staticmethod
    def select(selector: RecordSelector, body: Any, path: str) -> list[Any]:
        """A page's items, or InvalidPage."""
        items = get_path(body, selector.path)
        if not isinstance(items, list):
            raise InvalidPage(path, f"an object with a list '{selector.path}'" if selector.path else "a list")
        return items

    def pages(
        self,
        requester: Requester,
        paginator: PageIncrement | OffsetIncrement | Cursor,
        selector: RecordSelector,
        partition: str | None,
        since: float | None,
        result: PollResult,
        extra: dict[str, Any] | None = None,
        size: int | None = None,
    ) -> AsyncGenerator[list[Any], None]:
        """A list's pages, as its paginator walks them (``size``: its page size, the source's by default)."""
        size = size or self.source.page_size
        path = self.path(requester.path, partition)
        params = {**self.base_params(requester, partition, since, size), **(extra or {})}
        fetch = functools.partial(self.fetch, requester)
        select = functools.partial(self.select, selector)
        max_pages = self.source.max_pages
        on_limit: Callable[[], None] = (
            self.max_pages_reached if partition is None else functools.partial(self.max_pages_reached, workflow_id=partition)
        )
        if isinstance(paginator, PageIncrement):
            return numbered_pages(
                lambda page: fetch(path, {**params, paginator.parameter: page}),
                lambda body: self._numbered(select(body, path), body, paginator, size),
                first=paginator.start,
                page_size=size,
                max_pages=max_pages,
                on_limit=on_limit,
            )
        if isinstance(paginator, OffsetIncrement):
            return numbered_pages(
                lambda page: fetch(path, {**params, paginator.parameter: page * size}),
                lambda body: (items := select(body, path), len(items) < size),
                first=0,
                page_size=size,
                max_pages=max_pages,
                on_limit=on_limit,
            )
        return cursor_pages(
            lambda cursor: self._cursor_fetch(fetch, path, params, paginator, cursor),
            lambda body: self._cursor_read(select(body, path), body, paginator, result),
            max_pages=max_pages,
            on_limit=on_limit,
        )

    @staticmethod
    def _numbered(items: list[Any], body: Any, paginator: PageIncrement, size: int) -> tuple[list[Any], bool]:
        last = len(items) < size
        if paginator.last_flag and isinstance(flag := get_path(body, paginator.last_flag), bool):
            last = flag
        elif paginator.more_flag and isinstance(flag := get_path(body, paginator.more_flag), bool):
            last = not flag
        elif paginator.total_pages:
            total, number = get_path(body, paginator.total_pages), get_path(body, "number")
            if type(total) is int and type(number) is int:
                last = number + 1 - paginator.start >= total
        return items, last

    async def _cursor_fetch(
        self,
        fetch: Callable[[str, dict[str, Any]], Awaitable[Any]],
        path: str,
        params: dict[str, Any],
        paginator: Cursor,
        cursor: str | None,
    ) -> Any:
        if cursor is None:
            return await fetch(path, params)
        if paginator.token_path is not None:
            assert paginator.parameter is not None
            return await fetch(path, {**params, paginator.parameter: cursor})
        next_path, next_params = cursor.split("\0", 1)
        return await fetch(next_path, dict(parse_qsl(next_params, keep_blank_values=True)))

    def _cursor_read(self, items: list[Any], body: Any, paginator: Cursor, result: PollResult) -> tuple[list[Any], str | None]:
        if paginator.next_path is not None and isinstance(body, (dict, Fields)):
            parent, _, key = paginator.next_path.rpartition(".")
            holder = get_path(body, parent)
            if isinstance(holder, dict) and key in holder and not holder[key]:
                return items, None  # the API says there is no next page
        if paginator.token_path is not None:
            token = get_path(body, paginator.token_path)
            return items, token if isinstance(token, str) and token else (str(token) if type(token) is int else None)
        url = get_path(body, paginator.next_url_path or "")
        return items, self._own_url(url, result) if isinstance(url, str) and url else None

    def _own_url(self, url: str, result: PollResult) -> str | None:
        """A next-page URL as ``path\\0query`` below ``base_url``; None (refused, counted) for a URL
        elsewhere: the source's credentials are never sent outside its own origin."""
        base = urlsplit(self.source.base_url)
        target = urlsplit(url if "://" in url else f"{base.scheme}://{base.netloc}{url}")
        if (target.scheme, target.netloc) != (base.scheme, base.netloc) or not target.path.startswith(base.path):
            result.invalid.append(("next_url_elsewhere", None))
            self.log.warning(
                "a next-page URL points outside the source's base_url: not followed (the credential "
                "is only ever sent to base_url's origin)"
            )
            return None
        return f"{target.path[len(base.path) :] or '/'}\0{target.query}"

    async def _read_time_window(self, partition: str | None, window: PollWindow, result: PollResult) -> None:
        incremental = self.spec.incremental
        path = self.path(self.spec.requester.path, partition)
        assert incremental.until_parameter is not None
        until = incremental.until_parameter

        async def read(low: float, high: float | None) -> tuple[int, list[float]]:
            params: dict[str, Any] = self.base_params(self.spec.requester, partition, low)
            params[until] = None if high is None else format_time(high, incremental.format)
            items = self.select(self.spec.record_selector, await self.fetch(self.spec.requester, path, params), path)
            rows: list[tuple[str, float]] = []
            await self.read_items(items, result, window=window, rows=rows)
            return len(items), [key_time for _, key_time in rows]

        now = now_of(window)
        await time_ranges(
            read,
            since=window.since,
            now=window.now if window.now is not None else window.since,
            page_size=self.source.page_size,
            max_pages=self.source.max_pages,
            newest_first=lambda keys: self._in_order(keys, result, now),
            on_limit=self.max_pages_reached,
            on_stuck=lambda at: self.page_stuck(result, at, self.spec.fields.key_name),
        )
        self.order.held(now)

    def _in_order(self, keys: Sequence[float], result: PollResult, now: float) -> bool:
        """Whether a full page keeps the promised newest-first order (once broken, not trusted until the
        order is tried again)."""
        self.check_newest_first(keys, None, self.spec.incremental.order_parameter, result, now)
        return not self.order.in_use(now)
