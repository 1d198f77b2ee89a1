"""``--test-read SOURCE``: one read of a configured source, as its first cycle against an empty state
would read it, bounded by a number of pages and of records; each request, page, item and verdict
printed, the state file never opened, nothing served (as Airbyte's connector builder tests a read).

Works through the provider contract alone (``make_provider``, ``Provider.read``, ``parse_items``,
the HTTP client's ``RequestObserver``), so every provider is read alike, declared ones included."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from typing import Any, TextIO

import aiohttp
import structlog

from agent_session_exporter.config import Config
from agent_session_exporter.count.read_plan import plan_read
from agent_session_exporter.count.state import SourceState
from agent_session_exporter.logs import redactor
from agent_session_exporter.model import PollResult, PollWindow
from agent_session_exporter.read.http_client import AuthRefused, BudgetExhausted, UpstreamError
from agent_session_exporter.read.providers import Provider, make_provider
from agent_session_exporter.read.source import SourceBase
from agent_session_exporter.testread.capture import Capture, LimitReached
from agent_session_exporter.testread.render import Report, render_text
from agent_session_exporter.testread.render_json import render_json
from agent_session_exporter.testread.verdicts import judge

log = structlog.get_logger()
DEFAULT_MAX_PAGES = 2
DEFAULT_MAX_RECORDS = 20


def _positive(value: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError("must be a whole number of at least 1")
    return int(value)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--test-read",
        dest="test_read",
        metavar="SOURCE",
        help="read the named source once (as its first cycle would, against an empty state), print "
        "each request, page and item and what would be counted, and exit; the state file is "
        "never opened, nothing is served",
    )
    parser.add_argument(
        "--test-read.max-pages",
        dest="test_read_max_pages",
        type=_positive,
        default=DEFAULT_MAX_PAGES,
        metavar="N",
        help=f"requests (pages) the test read sends at most (default {DEFAULT_MAX_PAGES})",
    )
    parser.add_argument(
        "--test-read.max-records",
        dest="test_read_max_records",
        type=_positive,
        default=DEFAULT_MAX_RECORDS,
        metavar="N",
        help=f"records the test read shows; no page is asked for past them (default {DEFAULT_MAX_RECORDS})",
    )
    parser.add_argument(
        "--test-read.format",
        dest="test_read_format",
        choices=["text", "json"],
        default="text",
        help="text (aligned, default) or json",
    )


async def run(config: Config, args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """The test read the flags ask for; its exit code: 0 read, 1 the read failed, 2 no such source."""
    return await read_source(
        config, args.test_read, args.test_read_max_pages, args.test_read_max_records, args.test_read_format, out, err
    )


async def read_source(
    config: Config,
    name: str,
    max_pages: int = DEFAULT_MAX_PAGES,
    max_records: int = DEFAULT_MAX_RECORDS,
    form: str = "text",
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Read the source ``name`` once and print it all to ``out`` (``form``: text or json); one line on
    ``err`` when the read fails. The exit code, as ``run``'s."""
    out, err = out or sys.stdout, err or sys.stderr
    source = next((s for s in config.sources if s.name == name), None)
    if source is None:
        names = ", ".join(s.name for s in config.sources)
        print(redactor.redact(f"test-read: no source named {name!r} in the config (its sources: {names})"), file=err)
        return 2
    redactor.set_secrets(config.secrets)
    capture = Capture(max_pages, max_records)
    now = time.time()
    floor = now - source.initial_lookback
    report = Report(source=source, since=floor, max_pages=max_pages, max_records=max_records, exchanges=capture.exchanges)
    result: PollResult | None = None
    async with aiohttp.ClientSession(trace_configs=[capture.trace_config()]) as session:
        provider = make_provider(source, session, capture)
        capture.watch(provider)
        report.auth = provider.AUTH
        report.notes = [note for note in (provider.describe(), source.deprecated) if note]
        try:
            result = await _read(provider, source, now, floor)
        except LimitReached:
            pass
        except Exception as exc:  # noqa: BLE001 - said in one line, never a traceback on stdout
            report.error = _failure(exc, source)
            if not isinstance(exc, (UpstreamError, TimeoutError)):
                log.exception("the test read failed unexpectedly", source=source.name)
    report.stopped = capture.stopped if result is None and report.error is None else None
    records = report.shown_records()
    kept = None if result is None else {id(r) for r in result.records}
    report.judgement = judge(records, kept, source, config.duration_buckets, now, floor)
    print(render_json(report) if form == "json" else render_text(report), file=out, end="")
    if report.error is not None:
        print(redactor.redact(f"test-read failed: {report.error}"), file=err)
        return 1
    return 0


async def _read(provider: Provider[Any], source: SourceBase, now: float, floor: float) -> PollResult:
    """One read as a first cycle reads (the window of an empty state), within the cycle's budgets."""
    plan = plan_read(
        SourceState(),
        floor,
        source.overlap,
        provider.source.page_size,
        floor,
        sweep_due=True,
        lookups=provider.PENDING_RECHECK == "lookup",
    )
    provider.http.start_cycle(source.max_requests_per_cycle)
    async with asyncio.timeout(source.cycle_timeout):
        return await provider.read(PollWindow(since=plan.since, now=now, stop_at_known=plan.stop_at_known))


def _failure(exc: Exception, source: SourceBase) -> str:
    """One line saying why the read failed, never a credential."""
    if isinstance(exc, AuthRefused):
        return f"credentials refused by the upstream API ({exc}); check api_key / basic_auth"
    if isinstance(exc, BudgetExhausted):
        return f"the read used its request budget (max_requests_per_cycle {source.max_requests_per_cycle}): {exc}"
    if isinstance(exc, UpstreamError):
        return f"upstream request failed: {exc}"
    if isinstance(exc, TimeoutError):
        return f"the read ran past cycle_timeout ({source.cycle_timeout:g}s)"
    return f"unexpected {type(exc).__name__}: {exc}"
