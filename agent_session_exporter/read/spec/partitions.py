"""A spec's ``partition_router``: the parents whose lists are read (Kapso's workflows), named by an
option or listed anew once per interval, and given up on only after several listings without them."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

from agent_session_exporter.model import InvalidRecord, PollResult
from agent_session_exporter.read.fields import lenient_str
from agent_session_exporter.read.http_client import UpstreamError
from agent_session_exporter.read.spec.extract import get_path
from agent_session_exporter.read.spec.requests import PartitionRouter
from agent_session_exporter.safetext import MAX_ID_BYTES, check_id

if TYPE_CHECKING:
    from agent_session_exporter.read.spec.provider import SpecProvider


class Partitions:
    """The parents of one source, with what the listings said of them."""

    def __init__(self, provider: SpecProvider, router: PartitionRouter) -> None:
        self.provider = provider
        self.router = router
        #: Parent names from the last listing (an item's workflow name where it has none).
        self.names: dict[str, str] = {}
        #: The parents read: those listed, and those missing from the last listings but not given up on.
        self._listed: tuple[str, ...] | None = None
        self._listed_at: float | None = None
        #: Parents read though missing from the last listings: how many listings in a row.
        self.missing: dict[str, int] = {}
        #: Parents given up on and not yet reported in a poll's result (a poll that fails after the
        #: listing, or starts again at a smaller page size, must not lose them).
        self._removed: set[str] = set()
        self.noun = provider.spec.nouns.partition

    def option(self, name: str | None) -> Any:
        return None if name is None else self.provider.options().get(name)

    async def current(self, now: float) -> tuple[str, ...]:
        """The parents named by the option, or those listed (anew once per interval)."""
        named = self.option(self.router.list_option)
        if named is not None:
            return tuple(named)
        interval = float(self.option(self.router.interval_option) or 0)
        if self._listed is not None and self._listed_at is not None and now - self._listed_at < interval:
            return self._listed
        log = self.provider.log
        try:
            found = await self._list()
        except UpstreamError as exc:
            if self._listed is None:
                raise
            log.warning(
                f"{self.noun} discovery failed; polling the {self.noun}s found last",
                error=str(exc),
                **{f"{self.noun}s": len(self._listed)},
            )
            return self._listed
        previous = self._listed
        if previous is not None:
            missing = {p: self.missing.get(p, 0) + 1 for p in previous if p not in found}
            removed = {p for p, listings in missing.items() if listings >= self.router.missing_listings}
            self.missing = {p: listings for p, listings in missing.items() if p not in removed}
            self._removed = (self._removed | removed) - set(found)
            added = [p for p in found if p not in previous]
            if added or removed or self.missing:
                log.info(
                    f"{self.noun}s discovered",
                    added=len(added),
                    removed=len(removed),
                    missing=len(self.missing),
                    polled=len(found) + len(self.missing),
                )
        else:
            log.info(f"{self.noun}s discovered", polled=len(found))
        read = found + tuple(p for p in previous or () if p in self.missing)
        self._listed, self._listed_at = read, now
        return read

    def reads(self, parent: str) -> bool:
        """Whether ``parent``'s list is read: named by the option, else listed (every one before the
        first listing)."""
        named = self.option(self.router.list_option)
        if named is not None:
            return parent in named
        return self._listed is None or parent in self._listed

    def take_removed(self) -> set[str]:
        removed, self._removed = self._removed, set()
        return removed

    async def _list(self) -> tuple[str, ...]:
        parent = self.router.parent
        cap = int(self.option(self.router.cap_option) or 0) or 1
        found: list[str] = []
        names: dict[str, str] = {}
        refused, reason = 0, ""
        pages = self.provider.pages(
            parent.requester,
            parent.paginator,
            parent.record_selector,
            None,
            None,
            PollResult(),
            size=min(self.provider.spec.page_size.max, cap),
        )
        async with contextlib.aclosing(pages):
            async for items in pages:
                for item in items:
                    parent_id = lenient_str({"id": get_path(item, parent.id)}, "id", limit=MAX_ID_BYTES + 1)
                    if not parent_id or parent_id in found:
                        continue
                    try:
                        found.append(check_id(parent_id))  # it goes into a path, and into the state
                    except InvalidRecord as exc:
                        refused, reason = refused + 1, exc.reason
                        continue
                    if parent.name and (name := lenient_str({"name": get_path(item, parent.name)}, "name")):
                        names[parent_id] = name
                if len(found) >= cap:
                    break
        log = self.provider.log
        if refused:
            log.warning(f"{self.noun}s with ids that cannot be kept are not polled", reason=reason, **{f"{self.noun}s": refused})
        if len(found) > cap:
            log.warning(
                f"more {self.noun}s than {self.router.cap_option}; polling the first of them", **{self.router.cap_option: cap}
            )
        self.names = names
        return tuple(found[:cap])
