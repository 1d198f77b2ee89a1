"""A declared provider: a spec read through the pagers that exist (``read/pagers.py``) and the base
provider's newest-first reading, order checks and lookups (``read/providers/base.py``)."""

from __future__ import annotations

import contextlib
import time
from typing import Any, Callable, ClassVar, Sequence

from agent_session_exporter.model import PendingRef, PollResult, PollWindow, SessionRecord
from agent_session_exporter.read.http_client import HttpClient, NotFound
from agent_session_exporter.read.providers.base import FilterIgnored, now_of
from agent_session_exporter.read.source import SourceBase
from agent_session_exporter.read.spec.extract import RecordMapper, first_present, get_path
from agent_session_exporter.read.spec.model import Spec, TimeWindow, as_paths
from agent_session_exporter.read.spec.paging import SpecPaging
from agent_session_exporter.read.spec.partitions import Partitions


class SpecProvider(SpecPaging):
    """Reads the API its ``SPEC`` declares. A subclass per spec (``spec_provider_class``)."""

    SPEC: ClassVar[Spec]
    PARSES_TYPED = True  # the mapper reads a page's structs as plain objects (read/spec/typed.py)

    def __init__(self, source: SourceBase, http: HttpClient, clock: Callable[[], float] = time.time) -> None:
        super().__init__(source, http, clock)
        self.spec = self.SPEC
        self.mapper = RecordMapper(self.spec)
        self.STATUSES = self.spec.status_table
        self.FIGURES = self.spec.figures
        self.PENDING_RECHECK = "lookup" if self.spec.lookup is not None else "window"
        router = self.spec.partition_router
        self.router = Partitions(self, router) if router is not None else None
        #: Taken while items come without their status: it is learned with one query per status.
        sessions, chain = f"{self.spec.name} {self.spec.nouns.session}s", self._chain()
        self.status_field = self.fallback(f"{sessions} carry no status field; learning status with one query per status",
                                          f"{sessions} carry a status field again; {chain}")
        #: Whether the API has shown if items carry their status (said once in the log).
        self._status_seen = False

    def parse_item(self, item: dict[str, Any]) -> SessionRecord:
        return self.mapper(item)

    def key_of(self, item: Any) -> tuple[str, float] | None:
        return self.mapper.key_of(item)

    # -- the poll -------------------------------------------------------------------------------------

    async def poll(self, window: PollWindow) -> PollResult:
        result = PollResult()
        now = now_of(window)
        for partition in await self.partitions(now):
            try:
                await self.read_learning_status(partition, window, result)
            except NotFound:
                if self.router is None or partition not in self.router.missing:
                    raise
                # missing from the listing, and its list gone too: skipped until it is given up on
        if self.spec.statuses.filter_parameter:
            self.status_field.held(now)
        if self.spec.lookup is not None:
            await self.recheck_pending(window.stale_pending, result, self.fetch_one)
        if self.router is not None:
            result.removed_workflows = self.router.take_removed()
        return result

    async def partitions(self, now: float) -> Sequence[str | None]:
        """The lists to read: a partition router's parents; one list without a router."""
        return (None,) if self.router is None else await self.router.current(now)

    async def read_learning_status(self, partition: str | None, window: PollWindow, result: PollResult) -> None:
        """Read one list; where its items lack the status field (``statuses.filter_parameter``), learn
        it with one query per status (a fallback: the field is tried again once per period)."""
        parameter = self.spec.statuses.filter_parameter
        if parameter is None:
            await self.read_partition(partition, window, result)
            return
        now = now_of(window)
        probe = PollResult()
        await self.read_partition(partition, window, probe)
        result.invalid.extend(probe.invalid)
        if not self.status_field.in_use(now):
            if not probe.records or all(r.status for r in probe.records):
                if probe.records and not self._status_seen:
                    self._status_seen = True
                    self.log.info(f"{self.spec.name} {self.spec.nouns.session}s carry a status field; {self._chain()}")
                result.records.extend(probe.records)
                return
            self._status_seen = True  # from here on the fallback says when that changes
            self.status_field.broke(now, statuses=list(self.STATUSES))
        elif all(r.session_id in window.known_finished for r in probe.records):
            return  # nothing new or pending in this list's window: no status to learn
        for status in self.STATUSES:
            await self.read_partition(partition, window, result, status)

    def describe(self) -> str | None:
        if self.spec.statuses.filter_parameter is None:
            return None
        noun = self.spec.nouns.session
        return (f"{self.spec.name} {noun}s: status is read from each {noun}'s 'status' field where present; where the "
                f"API omits it, it is learned with one '{self.spec.statuses.filter_parameter}'-filtered query per "
                f"status ({', '.join(self.STATUSES)})")

    def _chain(self) -> str:
        return "one query chain" + (f" per {self.spec.nouns.partition}" if self.spec.partition_router else "")

    async def read_partition(self, partition: str | None, window: PollWindow, result: PollResult,
                             status: str | None = None) -> None:
        """Read one list (``status``: filtered by it, each item's status taken as that)."""
        if isinstance(self.spec.paginator, TimeWindow):
            await self._read_time_window(partition, window, result)
            return
        parameter = self.spec.statuses.filter_parameter
        extra = {} if status is None or parameter is None else {parameter: status}
        pages = self.pages(self.spec.requester, self.spec.paginator, self.spec.record_selector, partition,
                           window.since, result, extra)
        parse = self._parser(partition, status)
        if self.spec.incremental.order == "newest_first" and status is None and parse is None:
            await self.read_newest_first(pages, window, window.since, result, self.spec.incremental.order_parameter)
            return
        async with contextlib.aclosing(pages):
            async for items in pages:
                await self.read_items(items, result, parse, window=window)

    def _parser(self, partition: str | None, status: str | None) -> Callable[[dict[str, Any]], SessionRecord] | None:
        """Items of a status-filtered query take that status; a partition's items take its id and name
        where they have no workflow of their own. None: the plain ``parse_item``."""
        if status is None and partition is None:
            return None
        name = self.router.names.get(partition) if self.router is not None and partition else None

        def parse(item: dict[str, Any]) -> SessionRecord:
            record = self.mapper(item, status)
            if partition and not record.workflow:
                record.workflow = partition
            if name and not record.workflow_name:
                record.workflow_name = name
            return record
        return parse

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
            items = self.select(self.spec.record_selector, body, path)
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
