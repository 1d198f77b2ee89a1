"""A declared provider: a spec read through the pagers that exist (``read/pagers.py``) and the base
provider's newest-first reading, order checks and lookups (``read/providers/base.py``)."""

from __future__ import annotations

import time
from typing import Any, AsyncIterator, Callable, ClassVar, Sequence
from urllib.parse import parse_qsl, quote, urlsplit

from agent_session_exporter.model import PendingRef, PollResult, PollWindow, SessionRecord
from agent_session_exporter.read.fields import InvalidPage
from agent_session_exporter.read.http_client import BEARER, HeaderAuth, HttpClient
from agent_session_exporter.read.pagers import cursor_pages, numbered_pages, time_ranges
from agent_session_exporter.read.providers.base import FilterIgnored, Provider, now_of
from agent_session_exporter.read.source import SourceBase
from agent_session_exporter.read.spec.extract import RecordMapper, first_present, get_path
from agent_session_exporter.read.spec.model import Cursor, OffsetIncrement, PageIncrement, Spec, TimeWindow, as_paths
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


class SpecProvider(Provider):
    """Reads the API its ``SPEC`` declares. A subclass per spec (``spec_provider_class``)."""

    SPEC: ClassVar[Spec]

    def __init__(self, source: SourceBase, http: HttpClient, clock: Callable[[], float] = time.time) -> None:
        super().__init__(source, http, clock)
        self.spec = self.SPEC
        self.mapper = RecordMapper(self.spec)
        self.STATUSES = self.spec.status_table
        self.FIGURES = self.spec.figures
        self.PENDING_RECHECK = "lookup" if self.spec.lookup is not None else "window"

    def parse_item(self, item: dict[str, Any]) -> SessionRecord:
        return self.mapper(item)

    # -- requests -------------------------------------------------------------------------------------

    def options(self) -> dict[str, Any]:
        """The values of the spec's declared options for this source."""
        declared = getattr(self.source, "options", None)
        if isinstance(declared, dict):
            return declared
        return {name: getattr(self.source, name, None) for name in self.spec.options}

    def render(self, template: Any, partition: str | None = None, session_id: str | None = None) -> Any:
        """A template's value: ``{page_size}``, ``{partition}``, ``{session_id}``, ``{options.NAME}``. A
        template that is one placeholder keeps its value's type; one whose value is unset is None (the
        parameter is left out)."""
        if not isinstance(template, str) or "{" not in template:
            return template
        values = {"page_size": self.source.page_size, "partition": partition, "session_id": session_id,
                  **{f"options.{k}": v for k, v in self.options().items()}}
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

    def base_params(self, partition: str | None, since: float | None) -> dict[str, Any]:
        params = {key: self.render(value, partition) for key, value in self.spec.requester.query.items()}
        incremental = self.spec.incremental
        if since is not None and incremental.since_parameter:
            params[incremental.since_parameter] = format_time(since, incremental.format)
        return params

    async def fetch(self, path: str, params: dict[str, Any]) -> Any:
        """One request of the list: GET with a query, or POST with the fixed body and the parameters."""
        if self.spec.requester.method == "GET":
            return await self.http.get_json(path, params)
        body = {key: self.render(value) for key, value in (self.spec.requester.body or {}).items()}
        return await self.http.post_json(path, {**body, **{k: v for k, v in params.items() if v is not None}})

    def select(self, body: Any, path: str) -> list[Any]:
        """The page's items (``record_selector``), or InvalidPage."""
        where = self.spec.record_selector.path
        items = get_path(body, where)
        if not isinstance(items, list):
            raise InvalidPage(path, f"an object with a list '{where}'" if where else "a list")
        return items

    # -- the poll -------------------------------------------------------------------------------------

    async def poll(self, window: PollWindow) -> PollResult:
        result = PollResult()
        for partition in await self.partitions(window):
            await self.read_partition(partition, window, result)
        if self.spec.lookup is not None:
            await self.recheck_pending(window.stale_pending, result, self.fetch_one)
        return result

    async def partitions(self, window: PollWindow) -> Sequence[str | None]:
        """The lists to read (a partition router's parents); one list without a router."""
        return (None,)

    async def read_partition(self, partition: str | None, window: PollWindow, result: PollResult,
                             status: str | None = None) -> None:
        paginator = self.spec.paginator
        if isinstance(paginator, TimeWindow):
            await self._read_time_window(partition, window, result)
            return
        pages = self.pages(partition, window.since, result)
        if self.spec.incremental.order == "newest_first":
            await self.read_newest_first(pages, window, window.since, result, self.spec.incremental.order_parameter)
        else:
            async for items in pages:
                self.parse_items(items, result)

    def pages(self, partition: str | None, since: float, result: PollResult,
              extra: dict[str, Any] | None = None) -> AsyncIterator[list[Any]]:
        """The list's pages, as the paginator walks them."""
        paginator = self.spec.paginator
        path = self.path(self.spec.requester.path, partition)
        params = {**self.base_params(partition, since), **(extra or {})}
        size = self.source.page_size
        on_limit = self.max_pages_reached
        if isinstance(paginator, PageIncrement):
            return numbered_pages(lambda page: self.fetch(path, {**params, paginator.parameter: page}),
                                  lambda body: self._numbered(body, path, paginator), first=paginator.start,
                                  max_pages=self.source.max_pages, on_limit=on_limit, page_size=size)
        if isinstance(paginator, OffsetIncrement):
            return numbered_pages(lambda page: self.fetch(path, {**params, paginator.parameter: page * size}),
                                  lambda body: self._offsets(body, path, paginator), first=0,
                                  max_pages=self.source.max_pages, on_limit=on_limit, page_size=size)
        assert isinstance(paginator, Cursor)
        return cursor_pages(lambda cursor: self._cursor_fetch(path, params, paginator, cursor),
                            lambda body: self._cursor_read(body, path, paginator, result),
                            max_pages=self.source.max_pages, on_limit=on_limit)

    def _numbered(self, body: Any, path: str, paginator: PageIncrement) -> tuple[list[Any], bool]:
        items = self.select(body, path)
        last = len(items) < self.source.page_size
        if paginator.last_flag and isinstance(flag := get_path(body, paginator.last_flag), bool):
            last = flag
        elif paginator.more_flag and isinstance(flag := get_path(body, paginator.more_flag), bool):
            last = not flag
        elif paginator.total_pages:
            total, number = get_path(body, paginator.total_pages), self._page_number(body)
            if type(total) is int and number is not None:
                last = number + 1 - paginator.start >= total
        return items, last

    @staticmethod
    def _page_number(body: Any) -> int | None:
        number = get_path(body, "number")
        return number if type(number) is int else None

    def _offsets(self, body: Any, path: str, paginator: OffsetIncrement) -> tuple[list[Any], bool]:
        items = self.select(body, path)
        return items, len(items) < self.source.page_size

    async def _cursor_fetch(self, path: str, params: dict[str, Any], paginator: Cursor, cursor: str | None) -> Any:
        if cursor is None:
            return await self.fetch(path, params)
        if paginator.token_path is not None:
            assert paginator.parameter is not None
            return await self.fetch(path, {**params, paginator.parameter: cursor})
        next_path, next_params = cursor.split("\0", 1)
        return await self.fetch(next_path, dict(parse_qsl(next_params, keep_blank_values=True)))

    def _cursor_read(self, body: Any, path: str, paginator: Cursor, result: PollResult) -> tuple[list[Any], str | None]:
        items = self.select(body, path)
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
            self.log.warning("a next-page URL points outside the source's base_url: not followed (the credential "
                             "is only ever sent to base_url's origin)")
            return None
        return f"{target.path[len(base.path):] or '/'}\0{target.query}"

    async def _read_time_window(self, partition: str | None, window: PollWindow, result: PollResult) -> None:
        incremental = self.spec.incremental
        path = self.path(self.spec.requester.path, partition)
        assert incremental.until_parameter is not None

        async def read(low: float, high: float | None) -> tuple[int, list[float]]:
            params = {**self.base_params(partition, low),
                      incremental.until_parameter: None if high is None else format_time(high, incremental.format)}
            items = self.select(await self.fetch(path, params), path)
            return len(items), [r.key_time for r in self.parse_items(items, result)]

        now = now_of(window)
        await time_ranges(read, since=window.since, now=window.now if window.now is not None else window.since,
                          page_size=self.source.page_size, max_pages=self.source.max_pages,
                          newest_first=lambda keys: self._in_order(keys, result, now), on_limit=self.max_pages_reached,
                          on_stuck=lambda at: self.page_stuck(result, at, self.spec.fields.key_time))
        self.order.held(now)

    def _in_order(self, keys: Sequence[float], result: PollResult, now: float) -> bool:
        """Whether a full page keeps the promised newest-first order (once broken, not trusted until the
        order is tried again)."""
        self.check_newest_first(keys, None, self.spec.incremental.order_parameter, result, now)
        return not self.order.in_use(now)

    # -- lookups --------------------------------------------------------------------------------------

    async def fetch_one(self, ref: PendingRef) -> list[Any]:
        """One pending session's item(s), as ``lookup`` declares: a detail answer, or the list filtered
        by id (a row of another session there proves the filter ignored)."""
        lookup = self.spec.lookup
        assert lookup is not None
        path = self.path(lookup.path, session_id=ref.session_id)
        params = {key: self.render(value, session_id=ref.session_id) for key, value in lookup.query.items()}
        body = await self.http.get_json(path, params)
        if lookup.list:
            items = self.select(body, path)
            for item in items:
                found = first_present(item, self.mapper.id.paths)
                if isinstance(found, (str, int)) and not isinstance(found, bool) and str(found) != ref.session_id:
                    raise FilterIgnored(next(iter(lookup.query), "id"))
            return items
        paths = as_paths(lookup.record) if lookup.record is not None else ("",)
        for where in paths:
            found = get_path(body, where)
            if isinstance(found, dict):
                return [found]
        return [body]
