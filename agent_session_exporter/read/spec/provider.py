"""A declared provider: a spec read through the pagers that exist (``read/pagers.py``) and the base
provider's newest-first reading, order checks and lookups (``read/providers/base.py``)."""

from __future__ import annotations

import contextlib
import time
from typing import Any, Callable, ClassVar, Sequence

from agent_session_exporter.model import PendingRef, PollResult, PollWindow, SessionRecord
from agent_session_exporter.read.http_client import AuthRefused, HttpClient, NotFound, UpstreamError
from agent_session_exporter.read.providers.base import now_of
from agent_session_exporter.read.providers.lookups import FilterIgnored
from agent_session_exporter.read.source import SourceBase
from agent_session_exporter.read.spec.extract import RecordMapper, first_present, get_path
from agent_session_exporter.read.spec.hidden import DetailReader, gap_records, read_newest_by_id
from agent_session_exporter.read.spec.model import Spec, TimeWindow, as_paths
from agent_session_exporter.read.spec.paging import SpecPaging
from agent_session_exporter.read.spec.partitions import Partitions
from agent_session_exporter.read.spec.requests import PartitionRouter


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
        self.status_field = self.fallback(
            f"{sessions} carry no status field; learning status with one query per status",
            f"{sessions} carry a status field again; {chain}",
        )
        #: Whether the API has shown if items carry their status (said once in the log).
        self._status_seen = False
        #: The sessions the plain list showed this poll (``id_gaps`` reads between them).
        self.listed: list[SessionRecord] = []
        self.details = DetailReader(self, self.spec.detail_reads) if self.spec.detail_reads is not None else None
        names = self.spec.workflow_names
        self.names = (
            None
            if names is None
            else Partitions(
                self, PartitionRouter(parent=names.parent, interval_option=names.interval_option, cap_option=names.cap_option)
            )
        )

    def parse_item(self, item: dict[str, Any]) -> SessionRecord:
        return self.mapper(item)

    def key_of(self, item: Any) -> tuple[str, float] | None:
        return self.mapper.key_of(item)

    # -- the poll -------------------------------------------------------------------------------------

    async def poll(self, window: PollWindow) -> PollResult:
        result = PollResult()
        now = now_of(window)
        self.listed = []
        for partition in await self.partitions(now):
            try:
                await self.read_learning_status(partition, window, result)
            except NotFound:
                if self.router is None or partition not in self.router.missing:
                    raise
                # missing from the listing, and its list gone too: skipped until it is given up on
        if self.spec.statuses.filter_parameter:
            self.status_field.held(now)
        also = await self.read_also(window, result)
        gaps = self.spec.id_gaps
        if gaps is not None and not (gaps.unless_option and self.options().get(gaps.unless_option)):
            placeholders, hidden = gap_records(gaps, self.listed, also, window)
            result.records += placeholders
            if self.details is not None:
                self.details.hidden(hidden)
        if self.spec.lookup is not None:
            await self.recheck_pending(window.stale_pending, result, self.fetch_one)
        if self.details is not None:
            await self.details.read(result, window)
        await self.name_workflows(result, now)
        if self.router is not None:
            result.removed_workflows = self.router.take_removed()
        return result

    async def read_also(self, window: PollWindow, result: PollResult) -> set[str]:
        """``also_read``: the list read again with more parameters, each to its end; the ids it showed."""
        shown: set[str] = set()
        paginator = self.spec.paginator
        for extra in self.spec.also_read:
            assert not isinstance(paginator, TimeWindow)  # the spec refuses it
            pages = self.pages(
                self.spec.requester, paginator, self.spec.record_selector, None, window.since, result, dict(extra.query)
            )
            async with contextlib.aclosing(pages):
                async for items in pages:
                    shown.update(r.session_id for r in self.parse_items(items, result))
        return shown

    async def name_workflows(self, result: PollResult, now: float) -> None:
        """``workflow_names``: a session without a workflow name takes its workflow's (a failed listing
        leaves names out this cycle: they label, they never decide a count)."""
        if self.names is None:
            return
        try:
            await self.names.current(now)
        except UpstreamError as exc:
            if isinstance(exc, AuthRefused):
                raise
            self.log.warning("workflow names could not be listed", error=exc.kind)
        for record in result.records:
            if record.workflow and not record.workflow_name:
                record.workflow_name = self.names.names.get(record.workflow)

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
        result.known_seen += probe.known_seen
        if probe.newest_known is not None:
            result.newest_known = max(probe.newest_known, result.newest_known or probe.newest_known)
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
        return (
            f"{self.spec.name} {noun}s: status is read from each {noun}'s 'status' field where present; where the "
            f"API omits it, it is learned with one '{self.spec.statuses.filter_parameter}'-filtered query per "
            f"status ({', '.join(self.STATUSES)})"
        )

    def _chain(self) -> str:
        return "one query chain" + (f" per {self.spec.nouns.partition}" if self.spec.partition_router else "")

    async def read_partition(
        self, partition: str | None, window: PollWindow, result: PollResult, status: str | None = None
    ) -> None:
        """Read one list (``status``: filtered by it, each item's status taken as that)."""
        if isinstance(self.spec.paginator, TimeWindow):
            await self._read_time_window(partition, window, result)
            return
        parameter = self.spec.statuses.filter_parameter
        extra = {} if status is None or parameter is None else {parameter: status}
        pages = self.pages(
            self.spec.requester, self.spec.paginator, self.spec.record_selector, partition, window.since, result, extra
        )
        parse = self._parser(partition, status)
        if self.spec.incremental.order == "newest_first" and status is None and parse is None:
            if self.spec.incremental.order_by == "id":
                self.listed = await read_newest_by_id(self, pages, window, result)
            else:
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

    @property
    def can_look_up(self) -> bool:
        return self.spec.lookup is not None

    def polls_workflow(self, workflow: str) -> bool:
        """A partition router's parents are the workflows read (named, or listed); else every one."""
        return self.router.reads(workflow) if self.router is not None else super().polls_workflow(workflow)

    async def fetch_one(self, ref: PendingRef, extra: dict[str, Any] | None = None) -> list[Any]:
        """One pending session's item(s), as ``lookup`` declares: a detail answer, or the list filtered
        by id (a row of another session there proves the filter ignored). ``extra``: more parameters."""
        lookup = self.spec.lookup
        assert lookup is not None
        path = self.path(lookup.path, session_id=ref.session_id)
        params = {key: self.render(value, session_id=ref.session_id) for key, value in {**lookup.query, **(extra or {})}.items()}
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
